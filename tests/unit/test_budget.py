"""The per-portal call budget, in virtual time."""

import trio
from trio.testing import MockClock

from throttled.hubspot.budget import PortalBudget


def _max_in_window(times: list[float], window: float) -> int:
    """Most calls in any half-open window; a call at t has left it at t + window exactly."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] + window <= t:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_never_more_than_the_limit_in_any_window():
    async def main():
        budget = PortalBudget(limit=10, window_s=1.0)
        calls: list[float] = []

        async def caller():
            for _ in range(10):
                await budget.acquire(7)
                calls.append(trio.current_time())
                await trio.sleep(0.013)

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(caller)
        return calls

    calls = trio.run(main, clock=MockClock(autojump_threshold=0))
    assert len(calls) == 50 and _max_in_window(calls, 1.0) == 10
    assert max(calls) < 5.0  # and it keeps the pace: 50 calls in about 5 windows


def test_portals_are_independent_and_block_waits():
    async def main():
        budget = PortalBudget(limit=2, window_s=10.0)
        for _ in range(2):
            await budget.acquire(1)
        await budget.acquire(2)  # another portal is not held up
        t_other = trio.current_time()
        budget.block(2, 30.0)
        await budget.acquire(2)
        return t_other, trio.current_time(), budget.in_window(1)

    t_other, t_after_block, in_window = trio.run(main, clock=MockClock(autojump_threshold=0))
    assert t_other == 0 and t_after_block == 30.0 and in_window == 0
