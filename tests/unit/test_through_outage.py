"""The tries of a write through a database outage (``db.engine.through_outage``), in virtual
time: pauses 0.25 s doubling to 2 s, giving up after the bound, other errors at once."""

from __future__ import annotations

import itertools

import pytest
import trio

from throttled.db.engine import DatabaseUnavailable, through_outage


async def _write(attempts: list[float], failures: int, error: type[Exception] = DatabaseUnavailable) -> str:
    async for attempt in through_outage(give_up_s=10):
        with attempt:
            attempts.append(trio.current_time())
            if len(attempts) <= failures:
                raise error("down")
            return "written"
    raise AssertionError("through_outage ended without a result")


async def test_tries_again_with_doubling_pauses_until_the_database_answers(autojump_clock):
    attempts: list[float] = []
    assert await _write(attempts, failures=5) == "written"
    pauses = [round(b - a, 3) for a, b in itertools.pairwise(attempts)]
    assert pauses == [0.25, 0.5, 1.0, 2.0, 2.0]


async def test_gives_up_after_the_bound_with_the_last_outage(autojump_clock):
    attempts: list[float] = []
    with pytest.raises(DatabaseUnavailable):
        await _write(attempts, failures=1000)
    assert 10 <= attempts[-1] - attempts[0] <= 12  # the bound, and at most one pause past it
    assert len(attempts) == 9  # 0, .25, .75, 1.75, 3.75, 5.75, 7.75, 9.75, 11.75


async def test_any_other_error_is_raised_at_once(autojump_clock):
    attempts: list[float] = []
    with pytest.raises(ValueError, match="down"):
        await _write(attempts, failures=1, error=ValueError)
    assert len(attempts) == 1
