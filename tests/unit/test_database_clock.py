"""The database clock's arithmetic (``throttled/clock.py``), with a hand-driven monotonic clock
and host wall clock: no database, no sleeping."""

from __future__ import annotations

import datetime as dt

import pytest
import trio

from throttled.clock import DatabaseClock

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)


class Hand:
    """A monotonic clock and a host wall clock moved by hand; the host is ``skew`` behind T0's world."""

    def __init__(self, skew_s: float = 0.0) -> None:
        self.mono = 100.0
        self.skew_s = skew_s

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> dt.datetime:  # the host's wall clock
        return T0 + dt.timedelta(seconds=self.mono - 100.0 - self.skew_s)

    async def sleep_until(self, when: dt.datetime) -> None:
        raise NotImplementedError


def test_now_is_the_database_time_carried_forward_by_the_monotonic_clock():
    hand = Hand(skew_s=2.5)  # the host is 2.5 s behind the database
    clock = DatabaseClock(hand.monotonic, hand)
    skew = clock.calibrate(99.998, T0, 100.002)  # asked at 99.998, answered at 100.002
    assert skew == pytest.approx(2.5) and clock.uncertainty_s == pytest.approx(0.002)
    hand.mono = 110.0
    assert clock.now() == T0 + 10 * S


def test_now_never_goes_backwards_when_a_reading_says_earlier():
    hand = Hand()
    clock = DatabaseClock(hand.monotonic, hand)
    clock.calibrate(100.0, T0, 100.0)
    hand.mono = 105.0
    assert clock.now() == T0 + 5 * S
    clock.calibrate(105.0, T0 + 4 * S, 105.0)  # the database says it is a second earlier
    assert clock.now() == T0 + 5 * S  # held, not stepped back
    hand.mono = 107.0
    assert clock.now() == T0 + 6 * S  # and from there on the new reading


def test_a_noisy_reading_does_not_replace_a_good_one_until_it_is_stale():
    hand = Hand()
    clock = DatabaseClock(hand.monotonic, hand)
    clock.calibrate(99.999, T0, 100.001)  # ±1 ms
    hand.mono = 110.0
    clock.calibrate(109.5, T0 + 10 * S + 0.3 * S, 110.5)  # ±500 ms, and 300 ms off
    assert clock.now() == T0 + 10 * S
    assert clock.uncertainty_s == pytest.approx(0.001)
    hand.mono = 170.5  # the good reading is over a minute old: a noisy one is better than drift
    clock.calibrate(170.0, T0 + 70 * S, 171.0)
    assert clock.uncertainty_s == pytest.approx(0.5)


def test_no_time_before_the_first_reading():
    clock = DatabaseClock(Hand().monotonic, Hand())
    assert not clock.synced
    with pytest.raises(RuntimeError):
        clock.now()


async def test_sleep_until_waits_for_the_clock_itself_when_a_reading_held_it_back(autojump_clock):
    # Found by a fresh-user trial: after a reading that held the clock back, sleep_until
    # returned 6.9 ms before now() reached its time.
    clock = DatabaseClock(trio.current_time, Hand())
    start = trio.current_time()
    clock.calibrate(start, T0, start)
    await trio.sleep(1.0)
    assert clock.now() == T0 + S  # read, as the daemon does all the time
    later = trio.current_time()
    clock.calibrate(later, T0 + 0.9 * S, later)  # the database says 100 ms earlier: held at T0 + 1 s
    assert clock.now() == T0 + S
    await clock.sleep_until(T0 + 1.05 * S)
    assert clock.now() >= T0 + 1.05 * S
