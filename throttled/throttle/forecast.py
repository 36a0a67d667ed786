"""When a queue's next releases will happen, at the latest — pure.

A webhook's record joins a queue at some *position* (1 = released next). Its block must
last until its release, so ingest asks this module when the position-th next release will
be, at the latest, if the queue runs from now on at its effective settings (the step's,
with an operator's override on top).

The schedule is an upper bound built from groups: the slots open now are released at once
(at the next opening of the business hours); after that, a group of ``group`` releases
every ``spacing`` — for ``burst``, the step's whole limit once per period; for ``smooth``,
the finer window's limit once per fine period (``rate.Throttle``), the spacing rounded so
that no window of the throttle ever holds more than its limit. A group due while the
business hours are closed goes at their next opening, and the next group follows a
``spacing`` after it. Why this is never early: sends already made lie at or before ``now``;
with one window they have all left it by ``start + period``, the time of the second group;
with several windows (``smooth``) and sends still in them, the second group waits for the
longest period, after which none of them counts any more. From then on the groups alone
respect every window, and holding a group to the business hours only spreads them further.

What it cannot know: records of a higher priority that arrive later go ahead of this one,
and a pause, a portal hold or a HubSpot outage stops the clock of releases but not that of
the block. The answer is a forecast, not a promise; ``block_length.py`` adds the margin.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from throttled.throttle.business_hours import BusinessHours
from throttled.throttle.rate import Throttle

_TICK = dt.timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A queue's next releases at the latest, from ``start`` on.

    Attributes:
        start: when the first release can happen (aware UTC): now, or the next opening.
        open_slots: releases allowed at ``start`` (≥ 0).
        resume: when the second group is due (before the business hours are applied).
        group: releases per later group (≥ 1).
        spacing: time between later groups.
        hours: the business hours releases keep to, or ``None`` (always open).
    """

    start: dt.datetime
    open_slots: int
    resume: dt.datetime
    group: int
    spacing: dt.timedelta
    hours: BusinessHours | None

    @classmethod
    def of(cls, throttle: Throttle, hours: BusinessHours | None, recent: Sequence[dt.datetime], in_flight: int,
           now: dt.datetime) -> Schedule:
        """The schedule of a queue limited by ``throttle`` at ``now``.

        Args:
            recent: acknowledged release times of the queue (any order; those outside the
                longest window are ignored).
            in_flight: releases sent and not yet acknowledged (each holds a slot).
            now: aware UTC.
        """
        group = min(r.limit for r in throttle.rates)
        # k groups of `group` in any window of one period must stay within its limit.
        spacing = max(_ceil_div(r.period, r.limit // group) for r in throttle.rates)
        start = hours.next_open(now) if hours is not None else now
        still_counted = in_flight > 0 or any(t > now - throttle.longest_period for t in recent)
        wait = throttle.longest_period if len(throttle.rates) > 1 and still_counted else spacing
        return cls(start, throttle.slots_open(recent, in_flight, now), start + wait, group, spacing, hours)

    def release_of(self, position: int, until: dt.datetime) -> dt.datetime | None:
        """When the ``position``-th next release (1 = next) happens at the latest, or
        ``None`` when that is after ``until`` (the caller's horizon; the walk stops there).

        Raises:
            ValueError: ``position`` below 1.
        """
        return self.releases_of([position], until)[0]

    def releases_of(self, positions: Sequence[int], until: dt.datetime) -> list[dt.datetime | None]:
        """:meth:`release_of` for each of ``positions`` (ascending), in one walk.

        Raises:
            ValueError: a position below 1, or positions not ascending.
        """
        if any(p < 1 for p in positions) or any(a > b for a, b in itertools.pairwise(positions)):
            raise ValueError("positions count from 1 and must be ascending")
        found: list[dt.datetime | None] = []
        pending = iter(positions)
        position = next(pending, None)
        for first, at, groups, size in self._stretches(until):
            while position is not None and position < first + groups * size:
                found.append(at + ((position - first) // size) * self.spacing)
                position = next(pending, None)
            if position is None:
                break
        return found + [None] * (len(positions) - len(found))

    def _stretches(self, until: dt.datetime) -> Iterator[tuple[int, dt.datetime, int, int]]:
        """The releases up to ``until`` as ``(first position, first time, groups, group
        size)`` runs, one per open stretch of the business hours (the slots open now make a
        run of their own): the walk costs one step per opening, not one per group."""
        if self.start > until:
            return
        if self.open_slots > 0:
            yield 1, self.start, 1, self.open_slots
        first, at = self.open_slots + 1, self.resume
        while True:
            if self.hours is not None:
                at = self.hours.next_open(at)
            if at > until:
                return
            closes = self.hours.closes_at(at) if self.hours is not None else None
            end = min(closes, until + _TICK) if closes is not None else until + _TICK
            groups = max(1, -(-(end - at) // self.spacing))
            yield first, at, groups, self.group
            first += groups * self.group
            at += groups * self.spacing


def _ceil_div(span: dt.timedelta, parts: int) -> dt.timedelta:
    """``span / parts`` rounded up to the microsecond (timedelta division rounds to nearest,
    which could make a group early by a microsecond)."""
    return dt.timedelta(microseconds=-(-(span // _TICK) // parts))
