import random

import pytest

from throttled.jobs.backoff import CAP_S, backoff_seconds


def test_doubles_per_failed_attempt_within_jitter():
    rng = random.Random(7)
    for attempt, base in [(1, 1), (2, 2), (3, 4), (6, 32)]:
        delay = backoff_seconds(attempt, rng=rng)
        assert base * 0.9 <= delay <= base * 1.1


def test_capped_at_one_hour_even_for_huge_attempts():
    assert backoff_seconds(10_000, rng=random.Random(1)) <= CAP_S * 1.1


def test_attempt_is_one_based():
    with pytest.raises(ValueError, match="1-based"):
        backoff_seconds(0)
