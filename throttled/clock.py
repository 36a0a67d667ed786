"""The one source of "now" for every time decision in the daemon.

Every component receives a :class:`Clock` instead of calling ``datetime.now`` or
``time.time`` itself, and passes ``clock.now()`` to SQL as a parameter, so tests can drive
time with :class:`trio.testing.MockClock` through :class:`TrioClock`.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import trio

UTC = dt.timezone.utc


class Clock(Protocol):
    """What the daemon asks of a clock.

    ``now()`` returns an aware UTC :class:`datetime.datetime`; ``sleep_until(when)`` returns
    once ``now() >= when`` (or at once if that is already true). Both must be called from
    inside a trio run.
    """

    def now(self) -> dt.datetime: ...

    async def sleep_until(self, when: dt.datetime) -> None: ...


class WallClock:
    """Production clock: the system's UTC wall time.

    Sleeps are trio sleeps of the remaining wall-time difference, so a wall-clock step
    (NTP) shortens or lengthens one sleep at most; callers re-check ``now()`` after waking.
    """

    def now(self) -> dt.datetime:
        """Current UTC time, aware."""
        return dt.datetime.now(UTC)

    async def sleep_until(self, when: dt.datetime) -> None:
        """Sleep until ``when`` (aware datetime); return at once if it has passed."""
        await trio.sleep(max(0.0, (when - self.now()).total_seconds()))

    def __repr__(self) -> str:
        return "WallClock()"


class TrioClock:
    """A wall clock that follows trio's clock: ``now() = epoch + trio.current_time()``.

    Under :class:`trio.testing.MockClock` time is virtual, so MockClock-driven tests see a
    deterministic, jumpable UTC time. ``epoch`` is the UTC datetime that trio time 0 maps to.
    """

    def __init__(self, epoch: dt.datetime) -> None:
        if epoch.tzinfo is None:
            raise ValueError("epoch must be an aware datetime")
        self.epoch = epoch.astimezone(UTC)

    def now(self) -> dt.datetime:
        """``epoch`` plus trio's current time, aware UTC."""
        return self.epoch + dt.timedelta(seconds=trio.current_time())

    async def sleep_until(self, when: dt.datetime) -> None:
        """Sleep in trio time until ``when`` (aware datetime)."""
        await trio.sleep_until((when - self.epoch).total_seconds())

    def __repr__(self) -> str:
        return f"TrioClock(epoch={self.epoch.isoformat()})"
