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


def _run(main):
    return trio.run(main, clock=MockClock(autojump_threshold=0))


def test_calls_limit_apart_are_a_window_apart_however_slow_the_answers():
    async def main():
        budget = PortalBudget(limit=10, window_s=1.0)
        starts, answers = [], []

        async def caller(i):
            for _ in range(6):
                async with budget.slot(7):
                    starts.append(trio.current_time())
                    await trio.sleep(0.05 + 0.37 * (i % 3))  # slow and uneven answers
                    answers.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(caller, i)
        return starts, answers

    starts, answers = _run(main)
    assert len(starts) == 30
    # HubSpot receives each call between its start and its answer; the k-th and (k+10)-th
    # calls are a window apart at worst: the later start follows the earlier answer by ≥ 1 s.
    ordered_starts, ordered_answers = sorted(starts), sorted(answers)
    assert all(ordered_starts[k + 10] >= ordered_answers[k] + 1.0 for k in range(len(starts) - 10))
    assert _max_in_window(starts, 1.0) <= 10


def test_portals_are_independent_and_block_waits():
    async def main():
        budget = PortalBudget(limit=2, window_s=10.0)
        for _ in range(2):
            async with budget.slot(1):
                pass
        busy = budget.in_window(1)
        async with budget.slot(2):  # another portal is not held up
            t_other = trio.current_time()
        budget.block(2, 30.0)
        async with budget.slot(2):
            t_after_block = trio.current_time()
        await trio.sleep(5)
        budget.forget_idle()
        return t_other, t_after_block, busy, budget.in_window(1), len(budget._portals)

    t_other, t_after_block, busy, later, tracked = _run(main)
    assert (t_other, t_after_block, busy, later) == (0, 30.0, 2, 0)
    assert tracked == 1  # portal 2's last call is still in its window; portal 1 was forgotten


def test_full_in_flight_waits_for_an_answer():
    async def main():
        budget = PortalBudget(limit=1, window_s=0.5)
        order = []

        async def call(name, hold):
            async with budget.slot(3):
                order.append((name, trio.current_time()))
                await trio.sleep(hold)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "a", 2.0)
            await trio.sleep(0.1)
            nursery.start_soon(call, "b", 0.0)
        return order

    assert _run(main) == [("a", 0.0), ("b", 2.5)]


def test_a_charged_call_takes_a_slot_for_a_window():
    async def main():
        budget = PortalBudget(limit=3, window_s=1.0)
        budget.charge(7)  # e.g. the install's token metadata call, counted after the fact
        assert budget.in_window(7) == 1
        starts = []
        for _ in range(3):
            async with budget.slot(7):
                starts.append(trio.current_time())
        return starts

    assert _run(main) == [0.0, 0.0, 1.0]  # the third call waits for the charged one to leave
