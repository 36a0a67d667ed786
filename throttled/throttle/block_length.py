"""How long a block to ask HubSpot for, or that no block can cover the wait — pure.

HubSpot holds a ``BLOCK`` for ``hs_expiration_duration`` and then moves the record on
without us (protocol notes §2); a block cannot be extended after the answer (the callbacks
API only completes, §5). So the length is chosen once, at the webhook: long enough for the
record's forecast release (``forecast.py``) plus a margin, at least the step's period and
at least the shortest block, and never more than the longest block. When even the longest
block cannot cover the forecast, the record is refused (the caller answers so the customer
sees it) rather than held until it can only expire.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

#: Added to every forecast wait: the worker's cadence, HubSpot's acknowledgement and a short
#: outage of HubSpot or the database (which delay releases, not the block).
MARGIN_FLOOR = dt.timedelta(hours=1)
#: And a tenth of the wait: long waits carry more forecast error (later higher-priority
#: arrivals, pauses).
MARGIN_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class BlockLimits:
    """The shortest and the longest block we ask for (``THROTTLED_BLOCK_DURATION``,
    ``THROTTLED_BLOCK_MAX``)."""

    shortest: dt.timedelta
    longest: dt.timedelta

    def __post_init__(self) -> None:
        if not dt.timedelta(0) < self.shortest <= self.longest:
            raise ValueError("the shortest block must be positive and not longer than the longest")


def margin(wait: dt.timedelta) -> dt.timedelta:
    """The slack added to a forecast ``wait``: one hour plus a tenth of the wait."""
    return MARGIN_FLOOR + max(dt.timedelta(0), wait) * MARGIN_SHARE


def needed(wait: dt.timedelta) -> dt.timedelta:
    """The block a forecast ``wait`` needs: the wait plus its :func:`margin`."""
    return max(dt.timedelta(0), wait) + margin(wait)


def horizon(limits: BlockLimits) -> dt.timedelta:
    """The longest forecast wait a block can still cover (waits past it are refused)."""
    # needed(w) = w·(1 + share) + floor ≤ longest  ⇔  w ≤ (longest − floor) / (1 + share)
    return max(dt.timedelta(0), (limits.longest - MARGIN_FLOOR) / (1 + MARGIN_SHARE))


def block_for(limits: BlockLimits, wait: dt.timedelta | None, period: dt.timedelta) -> dt.timedelta | None:
    """The block to ask for a record whose release is forecast ``wait`` from now.

    Args:
        wait: time until the forecast release; ``None`` when the forecast found none before
            the :func:`horizon`.
        period: the step's period (a block shorter than one period would leave a record no
            room if the window is full of sends we cannot see).

    Returns:
        The block length, whole seconds, within ``limits``; ``None`` when no block up to
        ``limits.longest`` covers the wait (refuse the record).
    """
    if wait is None or needed(wait) > limits.longest:
        return None
    chosen = min(limits.longest, max(limits.shortest, period, needed(wait)))
    return dt.timedelta(seconds=-(-chosen // dt.timedelta(seconds=1)))  # whole seconds, rounded up
