"""Rate arithmetic for the strict sliding window — pure, no I/O.

A queue limited to ``limit`` per ``period`` may send at most ``limit`` completions in any
window of length ``period`` (design invariant 4). With send times s₀ ≤ s₁ ≤ …, that is
``s[i + limit] - s[i] >= period`` for every i: a new send at ``now`` is allowed when fewer
than ``limit`` sends lie in ``(now - period, now]``.

Send times here are the times HubSpot *acknowledged* a completion: HubSpot acts on a
completion somewhere between our request and its reply, so counting the reply time and
starting new sends only after it keeps the bound true at HubSpot's end too. Sends whose
reply has not come yet ("in flight") occupy a slot until it does.

Times are aware :class:`datetime.datetime` (UTC) and :class:`datetime.timedelta`, so the
arithmetic is exact to the microsecond, as PostgreSQL stores it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

#: Seconds per time unit. "1 day" is 86,400 s: calendar days (DST) do not apply to a rate.
UNIT_SECONDS: dict[str, int] = {
    "seconds": 1,
    "minutes": 60,
    "hours": 3600,
    "days": 86400,
    "weeks": 604800,
}


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` sends per ``period`` (a strict sliding window)."""

    limit: int
    period: dt.timedelta

    @classmethod
    def of(cls, max_throughput: int, time_period: int, time_unit: str) -> Rate:
        """Build from a step's inputs, e.g. ``Rate.of(100, 1, "hours")``.

        Raises:
            ValueError: limit or period below 1, or an unknown unit.
        """
        if max_throughput < 1 or time_period < 1:
            raise ValueError("max_throughput and time_period must be at least 1")
        if time_unit not in UNIT_SECONDS:
            raise ValueError(f"unknown time unit {time_unit!r}")
        return cls(max_throughput, dt.timedelta(seconds=time_period * UNIT_SECONDS[time_unit]))

    @property
    def per_second(self) -> float:
        """The long-run rate, sends per second."""
        return self.limit / self.period.total_seconds()


def slots_open(rate: Rate, recent: Sequence[dt.datetime], in_flight: int, now: dt.datetime) -> int:
    """How many sends may start at ``now`` (≥ 0).

    Args:
        recent: acknowledged send times, any order; only those in ``(now - period, now]``
            matter, older ones may be passed and are ignored.
        in_flight: sends started but not yet acknowledged; each takes a slot.
    """
    cutoff = now - rate.period
    in_window = sum(1 for t in recent if t > cutoff)
    return max(0, rate.limit - in_window - in_flight)


def next_opening(
    rate: Rate, recent: Sequence[dt.datetime], in_flight: int, now: dt.datetime
) -> dt.datetime | None:
    """The earliest time at which at least one slot is open.

    Returns ``now`` if a slot is open already, and ``None`` when the answer depends on
    in-flight sends being acknowledged (they fill the whole window): ask again after they are.
    """
    if slots_open(rate, recent, in_flight, now) > 0:
        return now
    if in_flight >= rate.limit:
        return None
    cutoff = now - rate.period
    newest_first = sorted((t for t in recent if t > cutoff), reverse=True)
    # One slot opens when the (limit - in_flight)-th most recent send leaves the window.
    return newest_first[rate.limit - in_flight - 1] + rate.period


#: Smooth mode releases in groups about this far apart (one portal flush, roughly).
SMOOTH_GROUP = dt.timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Throttle:
    """One or more strict windows that must all allow a send.

    ``burst``: the step's window alone — up to ``limit`` at once when the window allows.
    ``smooth``: also a finer window of ``k`` per ``k · period / limit``, with ``k`` the sends
    that fit in about one :data:`SMOOTH_GROUP` (at least 1): evenly spaced, one every
    ``period / limit`` on average, released in small groups rather than one job run per
    record. The step's window still holds because it is one of the constraints.
    """

    rates: tuple[Rate, ...]

    @classmethod
    def burst(cls, rate: Rate) -> Throttle:
        return cls((rate,))

    @classmethod
    def smooth(cls, rate: Rate, group: dt.timedelta = SMOOTH_GROUP) -> Throttle:
        k = max(1, int(rate.limit * (group / rate.period)))
        if k >= rate.limit:
            return cls.burst(rate)
        # Round the fine period up to the microsecond so k per fine period never beats the rate.
        fine = dt.timedelta(microseconds=-((-rate.period.total_seconds() * 1_000_000 * k) // rate.limit))
        return cls((rate, Rate(k, fine)))

    @classmethod
    def for_mode(cls, mode: str, rate: Rate) -> Throttle:
        """``Throttle.burst`` or ``Throttle.smooth`` by the step's ``mode`` input."""
        return cls.smooth(rate) if mode == "smooth" else cls.burst(rate)

    @property
    def history(self) -> int:
        """How many recent sends the decisions need (the largest limit)."""
        return max(r.limit for r in self.rates)

    @property
    def longest_period(self) -> dt.timedelta:
        return max(r.period for r in self.rates)

    def slots_open(self, recent: Sequence[dt.datetime], in_flight: int, now: dt.datetime) -> int:
        """Sends allowed at ``now`` under every window."""
        return min(slots_open(r, recent, in_flight, now) for r in self.rates)

    def next_opening(self, recent: Sequence[dt.datetime], in_flight: int, now: dt.datetime) -> dt.datetime | None:
        """Earliest time every window has a slot (slots only open as time passes, so it is
        the latest of the windows' own openings); ``None`` if one depends on acknowledgements."""
        openings = [next_opening(r, recent, in_flight, now) for r in self.rates]
        known = [o for o in openings if o is not None]
        return max(known) if len(known) == len(openings) else None


def max_in_window(times: Sequence[dt.datetime], period: dt.timedelta) -> int:
    """The most sends found in any half-open window ``[t, t + period)``; 0 for no sends.

    This is the check the demo and tests apply to recorded completion times.
    """
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - period:
            start += 1
        best = max(best, end - start + 1)
    return best
