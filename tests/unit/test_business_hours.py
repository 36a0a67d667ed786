"""Business hours: weekdays and hours in an IANA zone, DST-correct (pure)."""

import datetime as dt

import pytest

from throttled.throttle.business_hours import HoursError, parse_business_hours

UTC = dt.UTC


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_no_window_when_no_days_or_hours():
    assert parse_business_hours(None, "", "Europe/Berlin") is None


def test_weekday_office_hours_in_berlin():
    window = parse_business_hours("mon,tue,wed,thu,fri", "09:00-17:30", "Europe/Berlin")
    saturday_noon = utc(2026, 3, 28, 12)
    assert not window.is_open(saturday_noon)
    # Monday 30 March is in summer time (UTC+2): 09:00 local = 07:00 UTC
    assert window.next_open(saturday_noon) == utc(2026, 3, 30, 7)
    assert window.is_open(utc(2026, 3, 30, 7)) and not window.is_open(utc(2026, 3, 30, 6, 59, 59))
    assert window.closes_at(utc(2026, 3, 30, 12)) == utc(2026, 3, 30, 15, 30)
    # in winter the same local hours are an hour later in UTC
    assert window.next_open(utc(2026, 1, 3, 12)) == utc(2026, 1, 5, 8)


def test_dst_change_inside_the_window_keeps_local_hours():
    # 29 March 2026, Berlin: 02:00 CET jumps to 03:00 CEST. Window 00:00-06:00 local.
    window = parse_business_hours(None, "00:00-06:00", "Europe/Berlin")
    opens = window.next_open(utc(2026, 3, 28, 22))
    assert opens == utc(2026, 3, 28, 23)  # 00:00 CET
    assert window.closes_at(opens) == utc(2026, 3, 29, 4)  # 06:00 CEST: five real hours
    # 25 October 2026: 03:00 CEST falls back to 02:00 CET — seven real hours that night
    assert window.closes_at(utc(2026, 10, 24, 22)) == utc(2026, 10, 25, 5)


def test_overnight_window_belongs_to_its_start_day():
    window = parse_business_hours("fri", "22:00-06:00", "UTC")
    assert window.is_open(utc(2026, 1, 3, 5))       # Saturday 05:00, opened Friday
    assert not window.is_open(utc(2026, 1, 3, 22))  # Saturday 22:00: not a Friday
    assert window.next_open(utc(2026, 1, 3, 7)) == utc(2026, 1, 9, 22)


def test_day_ranges_and_names():
    assert parse_business_hours("mon-fri", None, None).days == frozenset(range(5))
    assert parse_business_hours("sat-mon", None, None).days == frozenset({5, 6, 0})
    assert parse_business_hours("Monday, TUES,wednesday", None, None).days == frozenset({0, 1, 2})
    assert parse_business_hours(None, "08:00-24:00", None).end_minute == 1440


@pytest.mark.parametrize(
    ("days", "hours", "zone", "field"),
    [
        ("funday", None, None, "inputFields.release_days"),
        (7, None, None, "inputFields.release_days"),
        (None, "9-17", None, "inputFields.release_hours"),
        (None, "25:00-26:00", None, "inputFields.release_hours"),
        (None, "09:00-09:00", None, "inputFields.release_hours"),
        ("mon", None, "Mars/Olympus", "inputFields.time_zone"),
        ("mon", None, "../etc/passwd", "inputFields.time_zone"),
    ],
)
def test_bad_inputs_name_their_field(days, hours, zone, field):
    with pytest.raises(HoursError) as info:
        parse_business_hours(days, hours, zone)
    assert info.value.field == field


@pytest.mark.parametrize(("days", "hours", "text"), [
    ("mon-fri", "09:00-17:30", "mon-fri 09:00-17:30 Europe/Berlin"),
    ("mon,wed,thu,sun", "22:00-06:00", "mon,wed-thu,sun 22:00-06:00 Europe/Berlin"),
    (None, "08:15-09:00", "every day 08:15-09:00 Europe/Berlin"),
])
def test_hours_describe_themselves_in_the_inputs_words(days, hours, text):
    assert parse_business_hours(days, hours, "Europe/Berlin").describe() == text
