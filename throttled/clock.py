"""The one source of "now" for every time decision in the daemon.

Every component receives a :class:`Clock` instead of calling ``datetime.now`` or
``time.time`` itself, and passes ``clock.now()`` to SQL as a parameter, so tests can drive
time with :class:`trio.testing.MockClock` through :class:`TrioClock`.

In production the clock is a :class:`DatabaseClock`: the database's time, read at start and
every few seconds (``throttled/service/clock_sync.py``) and carried forward between reads by
the host's monotonic clock. Daemons on several hosts share rows (rate windows, leases,
leadership, cron slots, ``release_after``, expiry), so they must share one time: the
database's. A host whose own clock is off does not matter; it is reported.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Protocol

import trio

UTC = dt.UTC


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
        await _sleep_until(self, when)

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


class DatabaseClock:
    """The database's time, shared by every daemon on it.

    ``now()`` is the database time of the best recent reading plus the host's monotonic time
    elapsed since, never going backwards. A reading (:meth:`calibrate`) is taken by asking the
    database for ``clock_timestamp()`` and noting the monotonic time before and after: the
    database's answer is taken as of the midpoint, good to half the round trip.

    Args:
        monotonic: seconds from a monotonic clock (default ``time.monotonic``); readings call
            it in a database thread, so it must work from any thread (``trio.current_time``
            does not: a test driving readings by trio's clock would fail there).
        wall: the host's wall clock, only to report how far it is from the database's.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic, wall: Clock | None = None) -> None:
        self._monotonic = monotonic
        self._wall = wall or WallClock()
        self._base: dt.datetime | None = None  # database time at the reading ...
        self._base_mono = 0.0                  # ... and the monotonic time it was taken at
        self._last = dt.datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()  # now() may be called from database threads too
        self.uncertainty_s = float("inf")  # half the round trip of the reading in use, seconds
        self.skew_s = 0.0  # database time minus the host's wall time at the last reading, seconds

    @property
    def synced(self) -> bool:
        """Whether a reading has been taken (``now()`` needs one)."""
        return self._base is not None

    def monotonic(self) -> float:
        """The monotonic clock readings are timed with, seconds; called from database threads."""
        return self._monotonic()

    def now(self) -> dt.datetime:
        """The database's current time (aware UTC), never earlier than a previous answer.

        Raises:
            RuntimeError: before the first :meth:`calibrate`.
        """
        with self._lock:
            if self._base is None:
                raise RuntimeError("DatabaseClock.now() before the first reading of the database's time")
            current = self._base + dt.timedelta(seconds=self._monotonic() - self._base_mono)
            self._last = max(self._last, current)
            return self._last

    async def sleep_until(self, when: dt.datetime) -> None:
        """Sleep until ``when`` (aware datetime) by this clock: until ``now() >= when``, also
        when a reading held the clock back meanwhile."""
        await _sleep_until(self, when)

    def calibrate(self, sent_mono: float, database_time: dt.datetime, received_mono: float) -> float:
        """Take a reading: the database said ``database_time`` between the monotonic times
        ``sent_mono`` and ``received_mono``. A reading replaces the one in use if its round trip
        is no longer than 1.5 × the best seen lately (or the one in use is over a minute old,
        so drift is corrected even on a noisy network). Returns the host's skew, seconds."""
        half = max(0.0, received_mono - sent_mono) / 2
        midpoint = sent_mono + half
        with self._lock:
            stale = self._base is None or midpoint - self._base_mono > 60.0
            if stale or half <= 1.5 * self.uncertainty_s or half <= 0.005:
                self._base, self._base_mono, self.uncertainty_s = database_time, midpoint, half
        wall = self._wall.now() - dt.timedelta(seconds=self._monotonic() - midpoint)
        self.skew_s = (database_time - wall).total_seconds()
        return self.skew_s

    def __repr__(self) -> str:
        return f"DatabaseClock(synced={self.synced}, skew_s={self.skew_s:.3f})"


async def _sleep_until(clock: Clock, when: dt.datetime) -> None:
    # Re-checked after waking: a clock held back by a reading has not reached `when` yet.
    while (remaining := (when - clock.now()).total_seconds()) > 0:
        await trio.sleep(remaining)
