"""The release forecast and the block length (pure): checked against a greedy simulation
of the strict window, the way the worker releases."""

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from throttled.throttle.block_length import BlockLimits, block_for, horizon, needed
from throttled.throttle.business_hours import parse_business_hours
from throttled.throttle.forecast import Schedule
from throttled.throttle.rate import Rate, Throttle

NOW = dt.datetime(2026, 3, 27, 15, 30, tzinfo=dt.UTC)  # a Friday, 16:30 in Berlin
WEEK, DAY, HOUR = dt.timedelta(weeks=1), dt.timedelta(days=1), dt.timedelta(hours=1)
FAR = NOW + dt.timedelta(days=400)


def greedy(throttle: Throttle, hours, recent: list[dt.datetime], now: dt.datetime, count: int) -> list[dt.datetime]:
    """Release ``count`` records as early as the windows and hours allow, one at a time."""
    sent, out, t = list(recent), [], now
    for _ in range(count):
        while True:
            opening = throttle.next_opening(sent, 0, t)
            assert opening is not None
            t = max(t, opening)
            if hours is None or hours.is_open(t):
                break
            t = hours.next_open(t)
        sent.append(t)
        out.append(t)
    return out


def test_one_per_week_releases_a_week_apart():
    schedule = Schedule.of(Throttle.burst(Rate.of(1, 1, "weeks")), None, [], 0, NOW)
    assert schedule.releases_of([1, 2, 3], FAR) == [NOW, NOW + WEEK, NOW + 2 * WEEK]


def test_a_full_window_pushes_the_first_release_one_period_on():
    # sent 2 days ago: truly free in 5 days; the bound says a week (one spacing, at most)
    schedule = Schedule.of(Throttle.burst(Rate.of(1, 1, "weeks")), None, [NOW - 2 * DAY], 0, NOW)
    assert schedule.open_slots == 0
    assert schedule.release_of(1, FAR) == NOW + WEEK


def test_business_hours_push_groups_to_the_next_opening():
    hours = parse_business_hours("mon-fri", "09:00-17:00", "Europe/Berlin")
    schedule = Schedule.of(Throttle.burst(Rate.of(10, 1, "hours")), hours, [], 0, NOW)
    monday_nine = dt.datetime(2026, 3, 30, 7, tzinfo=dt.UTC)  # 09:00 CEST
    assert schedule.releases_of([10, 11, 20, 21, 90, 91], FAR) == [
        NOW, monday_nine, monday_nine, monday_nine + HOUR,
        monday_nine + 7 * HOUR, dt.datetime(2026, 3, 31, 7, tzinfo=dt.UTC)]


def test_nothing_past_the_horizon():
    schedule = Schedule.of(Throttle.burst(Rate.of(1, 1, "days")), None, [], 0, NOW)
    assert schedule.release_of(5, NOW + 4 * DAY) == NOW + 4 * DAY
    assert schedule.release_of(6, NOW + 4 * DAY) is None


def test_positions_must_count_from_one_and_ascend():
    schedule = Schedule.of(Throttle.burst(Rate.of(1, 1, "days")), None, [], 0, NOW)
    with pytest.raises(ValueError, match="count from 1"):
        schedule.release_of(0, FAR)
    with pytest.raises(ValueError, match="ascending"):
        schedule.releases_of([3, 2], FAR)


rates = st.builds(Rate.of, st.integers(1, 30), st.integers(1, 5), st.sampled_from(["seconds", "minutes", "hours"]))


@settings(max_examples=60, deadline=None)
@given(rate=rates, sent_ago=st.lists(st.integers(0, 5 * 3600), max_size=40), smooth=st.booleans(),
       with_hours=st.booleans(), count=st.integers(1, 120))
def test_the_forecast_is_never_earlier_than_the_greedy_release(rate, sent_ago, smooth, with_hours, count):
    throttle = Throttle.smooth(rate) if smooth else Throttle.burst(rate)
    hours = parse_business_hours("mon-fri", "09:00-17:00", "Europe/Berlin") if with_hours else None
    recent = sorted(NOW - dt.timedelta(seconds=s) for s in sent_ago)
    recent = recent[-rate.limit:]  # a window never held more than its limit
    expected = greedy(throttle, hours, recent, NOW, count)
    schedule = Schedule.of(throttle, hours, recent, 0, NOW)
    forecast = schedule.releases_of(list(range(1, count + 1)), FAR)
    # How late it may be: a period and a group's spacing (plus a closed weekend), and the drift
    # of a spacing rounded up so that whole groups fit the windows (only when the group does
    # not divide the limit: smooth mode at more than two releases a second).
    late = throttle.longest_period + schedule.spacing + (dt.timedelta(days=3) if with_hours else dt.timedelta(0))
    drift = schedule.spacing - rate.period * schedule.group / rate.limit
    for position, (truth, bound) in enumerate(zip(expected, forecast, strict=True), start=1):
        assert bound is not None
        assert bound >= truth, f"position {position}: forecast {bound} before the release at {truth}"
        assert bound - truth <= late + drift * (position / schedule.group), \
            f"position {position}: forecast {bound}, release {truth}"


def test_smooth_waits_out_a_window_filled_by_earlier_sends():
    # 3 per minute, evenly: the fine window allows one per 20 s, but three sends just now
    # fill the minute — the next one cannot go before it has passed.
    throttle = Throttle.smooth(Rate.of(3, 1, "minutes"))
    schedule = Schedule.of(throttle, None, [NOW] * 3, 0, NOW)
    assert schedule.release_of(1, FAR) == NOW + dt.timedelta(minutes=1)
    fresh = Schedule.of(throttle, None, [], 0, NOW)
    assert fresh.releases_of([1, 2, 3], FAR) == [NOW, NOW + dt.timedelta(seconds=20), NOW + dt.timedelta(seconds=40)]


LIMITS = BlockLimits(shortest=dt.timedelta(days=7), longest=dt.timedelta(days=30))


def test_short_waits_get_the_shortest_block_and_long_ones_their_wait_plus_margin():
    assert block_for(LIMITS, dt.timedelta(0), HOUR) == dt.timedelta(days=7)
    assert block_for(LIMITS, 2 * WEEK, WEEK) == needed(2 * WEEK)
    assert needed(2 * WEEK) == 2 * WEEK + HOUR + 2 * WEEK / 10


def test_a_block_is_at_least_one_period_but_never_past_the_longest():
    assert block_for(LIMITS, dt.timedelta(0), 2 * WEEK) == 2 * WEEK
    assert block_for(LIMITS, dt.timedelta(0), dt.timedelta(days=60)) == LIMITS.longest


def test_a_wait_past_the_horizon_is_refused():
    edge = horizon(LIMITS)
    assert block_for(LIMITS, edge, DAY) is not None
    assert block_for(LIMITS, edge + dt.timedelta(seconds=1), DAY) is None
    assert block_for(LIMITS, None, DAY) is None


def test_limits_must_be_ordered():
    with pytest.raises(ValueError, match="not longer than the longest"):
        BlockLimits(shortest=dt.timedelta(days=8), longest=dt.timedelta(days=7))
