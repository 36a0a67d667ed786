"""The cleaner: a minutely cron job that prunes, expires and repairs (see ``cleaner.py``)."""

from throttled.cleaner.cleaner import CLEANER_CRON, CLEANER_KIND, Cleaner

__all__ = ["CLEANER_CRON", "CLEANER_KIND", "Cleaner"]
