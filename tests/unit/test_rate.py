"""The strict sliding window, with Hypothesis over arrival patterns and rates."""

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from throttled.throttle.rate import (
    Rate,
    Throttle,
    max_in_window,
    next_opening,
    slots_open,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_units_are_fixed_lengths():
    assert Rate.of(1, 1, "days").period == dt.timedelta(seconds=86400)
    assert Rate.of(1, 1, "weeks").period == dt.timedelta(seconds=604800)
    assert Rate.of(100, 2, "seconds").per_second == 50


@pytest.mark.parametrize(("limit", "period", "unit", "message"), [
    (0, 1, "hours", "must be at least 1"),
    (1, 0, "hours", "must be at least 1"),
    (1, 1, "months", "unknown time unit 'months'"),
])
def test_rate_rejects(limit, period, unit, message):
    with pytest.raises(ValueError, match=message):
        Rate.of(limit, period, unit)


def test_slots_count_window_and_in_flight():
    rate = Rate.of(5, 5, "seconds")
    sends = [at(0), at(1), at(2)]
    assert slots_open(rate, sends, 0, at(3)) == 2
    assert slots_open(rate, sends, 2, at(3)) == 0
    # the send at 0 leaves the window at exactly 5 s: (now - period, now] excludes it
    assert slots_open(rate, sends, 2, at(5)) == 1


def test_next_opening():
    rate = Rate.of(3, 10, "seconds")
    sends = [at(0), at(4), at(6)]
    assert next_opening(rate, sends, 0, at(7)) == at(10)
    assert next_opening(rate, sends, 1, at(7)) == at(14)
    assert next_opening(rate, sends, 3, at(7)) is None
    assert next_opening(rate, sends[:2], 0, at(7)) == at(7)


def test_max_in_window_half_open():
    period = dt.timedelta(seconds=2)
    assert max_in_window([], period) == 0
    assert max_in_window([at(0), at(1.999), at(2)], period) == 2
    assert max_in_window([at(0)] * 4 + [at(2)] * 4, period) == 4


def _simulate(rate: Rate, arrivals: list[float], latency: float, horizon: float) -> list[dt.datetime]:
    """Send greedily whenever allowed; each send is acknowledged ``latency`` seconds later."""
    acked: list[dt.datetime] = []
    backlog = sorted(at(a) for a in arrivals)
    sent, now, end = 0, at(0), at(horizon)
    step = dt.timedelta(seconds=latency)
    while now < end and sent < len(backlog):
        due = sum(1 for t in backlog[sent : sent + rate.limit] if t <= now)
        recent = acked[-rate.limit :]  # only the last `limit` sends can matter
        n = min(due, slots_open(rate, recent, 0, now))
        if n:
            sent += n
            now += step
            acked.extend([now] * n)
            continue
        candidates = [t for t in (next_opening(rate, recent, 0, now),) if t and t > now]
        if backlog[sent] > now:
            candidates.append(backlog[sent])
        now = min(candidates) if candidates else end
    return acked


rates = st.one_of(
    st.builds(Rate.of, st.integers(1, 1000), st.just(1), st.just("seconds")),
    st.builds(Rate.of, st.integers(1, 500), st.integers(1, 60), st.sampled_from(["seconds", "minutes", "hours"])),
    st.just(Rate.of(1, 1, "weeks")),
)


@settings(max_examples=150, deadline=None)
@given(rate=rates, arrivals=st.lists(st.floats(0, 1000, allow_nan=False), max_size=300),
       latency=st.sampled_from([0.0, 0.001, 0.05]))
def test_greedy_sender_never_exceeds_the_window(rate, arrivals, latency):
    sends = _simulate(rate, arrivals, latency, horizon=rate.period.total_seconds() * 5 + 1000)
    assert max_in_window(sends, rate.period) <= rate.limit


@settings(max_examples=60, deadline=None)
@given(rate=rates)
def test_backlogged_queue_reaches_99_percent(rate):
    periods = 50
    backlog = [0.0] * (rate.limit * (periods + 1))
    horizon = rate.period.total_seconds() * periods
    sends = _simulate(rate, backlog, latency=0.0, horizon=horizon)
    assert len(sends) >= 0.99 * rate.limit * periods
    assert max_in_window(sends, rate.period) <= rate.limit


def test_smooth_splits_the_period_into_even_groups():
    throttle = Throttle.smooth(Rate.of(100, 10, "seconds"))
    assert [(r.limit, r.period.total_seconds()) for r in throttle.rates] == [(100, 10.0), (10, 1.0)]
    slow = Throttle.smooth(Rate.of(50, 1, "hours"))
    assert [(r.limit, r.period.total_seconds()) for r in slow.rates] == [(50, 3600.0), (1, 72.0)]
    assert Throttle.smooth(Rate.of(1000, 1, "seconds")).rates == (Rate.of(1000, 1, "seconds"),)


def _simulate_throttle(throttle: Throttle, n: int, horizon: float) -> list[dt.datetime]:
    sent: list[dt.datetime] = []
    now, end = at(0), at(horizon)
    while len(sent) < n and now < end:
        recent = sent[-throttle.history:]
        k = min(n - len(sent), throttle.slots_open(recent, 0, now))
        if k:
            sent.extend([now] * k)
        opening = throttle.next_opening(sent[-throttle.history:], 0, now)
        now = opening if opening and opening > now else now + dt.timedelta(microseconds=1)
    return sent


@settings(max_examples=60, deadline=None)
@given(limit=st.integers(2, 300), period=st.integers(1, 120))
def test_smooth_is_even_and_within_the_step_window(limit, period):
    rate = Rate.of(limit, period, "seconds")
    throttle = Throttle.smooth(rate)
    sent = _simulate_throttle(throttle, limit * 3, horizon=period * 4)
    assert max_in_window(sent, rate.period) <= limit
    fine = throttle.rates[-1]
    assert max_in_window(sent, fine.period) <= fine.limit
    assert len(sent) >= limit * 3 * 0.99 - fine.limit  # a backlog still gets the full rate


def test_one_per_week():
    rate = Rate.of(1, 1, "weeks")
    sends = _simulate(rate, [0.0] * 3, latency=0.0, horizon=3 * 604800)
    assert [(s - sends[0]).total_seconds() for s in sends] == [0, 604800, 2 * 604800]


def test_five_per_five_seconds_exactly_five_each_window():
    rate = Rate.of(5, 5, "seconds")
    sends = _simulate(rate, [0.0] * 30, latency=0.0, horizon=100)
    per_window = [sum(1 for s in sends if at(w * 5) <= s < at(w * 5 + 5)) for w in range(6)]
    assert per_window == [5] * 6
