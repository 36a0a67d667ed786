"""Business hours (the ``release_days``/``release_hours``/``time_zone`` inputs): allowed
weekdays and hours in an IANA time zone — pure, DST-correct.

A step may say "release only Mon–Fri, 09:00–17:30 Europe/Berlin". Outside the window
nothing is released. Opening and closing are local wall-clock times computed with
``zoneinfo`` for each calendar day, so a window keeps its local hours across DST changes.
A window whose end is not after its start runs overnight (``22:00-06:00``); it belongs to
the day it starts on.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_ALL_DAYS = frozenset(range(7))
_MIDNIGHT = dt.time(0, 0)


class HoursError(ValueError):
    """A release-window input is malformed; ``field`` names the input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Open on ``days`` (0 = Monday) from ``start_minute`` to ``end_minute`` (minutes after
    local midnight; ``end_minute`` ≤ ``start_minute`` runs past midnight) in ``time_zone``."""

    days: frozenset[int]
    start_minute: int
    end_minute: int
    time_zone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def is_open(self, now: dt.datetime) -> bool:
        """Whether ``now`` (aware) falls inside an opening."""
        return any(start <= now < end for start, end in self._openings_around(now))

    def next_open(self, now: dt.datetime) -> dt.datetime:
        """``now`` if open, else the start of the next opening (aware UTC)."""
        for start, end in self._openings_around(now, ahead=8):
            if now < end:
                return max(start, now).astimezone(dt.UTC)
        raise AssertionError("a window with at least one day opens within 8 days")

    def closes_at(self, now: dt.datetime) -> dt.datetime | None:
        """End of the opening ``now`` is in (aware UTC), or ``None`` when closed."""
        for start, end in self._openings_around(now):
            if start <= now < end:
                return end.astimezone(dt.UTC)
        return None

    def describe(self) -> str:
        """In the inputs' own words, e.g. ``mon-fri 09:00-17:30 Europe/Berlin``."""
        days = sorted(self.days)
        runs: list[list[int]] = []
        for d in days:
            if runs and runs[-1][-1] == d - 1:
                runs[-1].append(d)
            else:
                runs.append([d])
        named = ",".join(DAY_NAMES[r[0]] if len(r) == 1 else f"{DAY_NAMES[r[0]]}-{DAY_NAMES[r[-1]]}" for r in runs)
        span = f"{_clock(self.start_minute)}-{_clock(self.end_minute)}"
        return f"{'every day' if len(days) == 7 else named} {span} {self.time_zone}"

    def _openings_around(self, now: dt.datetime, ahead: int = 1) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """(start, end) of openings starting on local days from yesterday to ``ahead``."""
        today = now.astimezone(self.zone).date()
        for offset in range(-1, ahead + 1):
            day = today + dt.timedelta(days=offset)
            if day.weekday() in self.days:
                yield self._opening(day)

    def _opening(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        start = _local(day, self.start_minute, self.zone)
        end_day = day if self.end_minute > self.start_minute else day + dt.timedelta(days=1)
        return start, _local(end_day, self.end_minute, self.zone)


def parse_business_hours(days: object, hours: object, time_zone: object) -> BusinessHours | None:
    """Build a window from the optional inputs ``release_days``, ``release_hours``, ``time_zone``.

    ``days``: ``"mon,tue,fri"`` or ranges ``"mon-fri"`` (full names too), default every day.
    ``hours``: ``"09:00-17:30"`` (``24:00`` allowed as an end), default all day.
    ``time_zone``: an IANA name, default ``UTC``. Returns ``None`` when neither days nor
    hours is given (no window).
    Raises:
        HoursError: naming ``inputFields.release_days|release_hours|time_zone``.
    """
    if _blank(days) and _blank(hours):
        return None
    zone_name = "UTC" if _blank(time_zone) else str(time_zone).strip()
    try:
        ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursError("inputFields.time_zone", "must be an IANA time zone such as Europe/Berlin") from None
    day_set = _ALL_DAYS if _blank(days) else _parse_days(days)
    start, end = (0, 24 * 60) if _blank(hours) else _parse_hours(hours)
    return BusinessHours(day_set, start, end, zone_name)


def _parse_days(value: object) -> frozenset[int]:
    if not isinstance(value, str):
        raise HoursError("inputFields.release_days", "must be a list of weekdays such as mon,tue,wed")
    result: set[int] = set()
    for part in value.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        a, b = _day(first), _day(last) if last else _day(first)
        result.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
    return frozenset(result)


def _day(name: str) -> int:
    """``mon`` … ``sun``, or any longer prefix of the full name (``tues``, ``wednesday``)."""
    for index, full in enumerate(_FULL_NAMES):
        if len(name) >= 3 and full.startswith(name):
            return index
    raise HoursError("inputFields.release_days", f"unknown weekday {name[:20]!r}; use mon..sun")


def _parse_hours(value: object) -> tuple[int, int]:
    match = _HOURS.match(value) if isinstance(value, str) else None
    if not match:
        raise HoursError("inputFields.release_hours", "must look like 09:00-17:30")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise HoursError("inputFields.release_hours", "hours are 00:00 to 24:00")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise HoursError("inputFields.release_hours", "start and end must differ")
    return start, end


def _local(day: dt.date, minute: int, zone: ZoneInfo) -> dt.datetime:
    """The aware instant of ``minute`` after local midnight of ``day``. A wall time in a
    spring-forward gap (02:30 on the night clocks jump 02:00 → 03:00) is read with the
    offset before the jump, i.e. shifted forward by the gap (to 03:30), per PEP 495 fold=0;
    a repeated autumn time is its first occurrence."""
    return (dt.datetime.combine(day, _MIDNIGHT) + dt.timedelta(minutes=minute)).replace(tzinfo=zone)


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
