"""The edge's sliding-window limit (pure)."""

from __future__ import annotations

import pytest

from throttled.web.limits import SlidingWindowLimit


def test_admits_limit_per_window_then_refuses_until_the_oldest_leaves():
    limit = SlidingWindowLimit(3, 60.0)
    assert [limit.admit(t) for t in (0.0, 1.0, 2.0, 3.0)] == [True, True, True, False]
    assert limit.retry_after_s(3.0) == pytest.approx(57.0)
    assert not limit.admit(59.9)
    assert limit.admit(60.0)  # the admission at 0.0 left the window (half-open)
    assert not limit.admit(60.5)
    assert limit.retry_after_s(60.5) == pytest.approx(0.5)


def test_refusals_do_not_count_against_the_window():
    limit = SlidingWindowLimit(1, 10.0)
    assert limit.admit(0.0)
    for t in range(1, 10):
        assert not limit.admit(float(t))
    assert limit.admit(10.0)


def test_nonsense_limits_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        SlidingWindowLimit(0, 1.0)
    with pytest.raises(ValueError, match="at least 1"):
        SlidingWindowLimit(1, 0.0)
