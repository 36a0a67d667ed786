"""What a workflow step asks of its throttle — pure: the rate, the mode, business hours.

Ingest parses a step's inputs into :class:`StepSettings` (``ingest/inputs.py``); the queue row
stores them; the worker applies them with an operator's override on top (``policy.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from throttled.throttle.business_hours import BusinessHours
from throttled.throttle.rate import Rate

MODES = ("burst", "smooth")


@dataclass(frozen=True, slots=True)
class StepSettings:
    """``max_throughput`` per ``time_period`` ``time_unit`` (a strict window), released in
    ``mode`` (``burst`` or ``smooth``), only within ``hours`` when it has business hours."""

    max_throughput: int
    time_period: int
    time_unit: str
    mode: str = "burst"
    hours: BusinessHours | None = None

    @property
    def rate(self) -> Rate:
        """The step's rate.

        Raises:
            ValueError: limit or period below 1, or an unknown unit.
        """
        return Rate.of(self.max_throughput, self.time_period, self.time_unit)

    def describe(self) -> str:
        """The settings in words, e.g. ``20 per day, smooth, mon-fri 09:00-17:00 Europe/Berlin``
        or ``5 per 2 hours, burst``."""
        per = self.time_unit.removesuffix("s") if self.time_period == 1 else f"{self.time_period} {self.time_unit}"
        words = f"{self.max_throughput} per {per}, {self.mode}"
        return words + (f", {self.hours.describe()}" if self.hours else "")
