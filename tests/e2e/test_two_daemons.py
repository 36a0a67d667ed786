"""Two daemons on one database, over real HTTP: the rate holds across both (invariant 4),
and every callback is completed exactly once (invariant 2).

Enrollments alternate between the daemons' URLs, so each daemon stores half of every step's
executions; either daemon's scheduler may claim a step's job. The bound is checked on the
times the sandbox recorded the completions — HubSpot's side of the wire.
"""

from __future__ import annotations

import collections

import trio

from tests.support.completions import settled_completions
from throttled.testing import Step, local_stack, max_per_window


async def _enroll_all(stack, plan: list[tuple[str, Step]], concurrency: int = 8) -> None:
    """Post every (callback id, step), alternating daemons, ``concurrency`` at a time."""
    urls = [d.url for d in stack.daemons]
    send, receive = trio.open_memory_channel(len(plan))
    for n, item in enumerate(plan):
        send.send_nowait((urls[n % len(urls)], *item))
    send.close()

    async def poster():
        async for url, callback_id, step in receive:
            response = await stack.hubspot.enroll(url, callback_id, stack.portal_id, step)
            assert response.status_code == 200, response.text

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(poster)


def _assert_each_once(done: list[dict], ids: list[str]) -> None:
    counts = collections.Counter(c["callbackId"] for c in done)
    assert [cid for cid, n in counts.items() if n > 1] == []
    assert sorted(counts) == sorted(ids)


async def test_one_step_across_two_daemons_keeps_its_rate(empty_database):
    step = Step(workflow_id=7001, action_id=1, limit=50, period=2, unit="seconds")
    async with local_stack(empty_database, daemons=2) as stack:
        ids = [f"ap-{stack.portal_id}-7001-{i}" for i in range(300)]
        await _enroll_all(stack, [(cid, step) for cid in ids])
        done = await settled_completions(stack, len(ids), timeout_s=25)
        stored_by = [d.batcher.committed for d in stack.daemons]
    _assert_each_once(done, ids)
    assert stored_by == [150, 150]  # both daemons really took part
    assert max_per_window([c["completedAt"] for c in done], 2.0) <= 50
    span = max(c["completedAt"] for c in done) - min(c["completedAt"] for c in done)
    assert span >= 10.0  # 300 at 50 per 2 s: six windows at least


async def test_two_steps_of_different_rates_across_two_daemons(empty_database):
    fast = Step(workflow_id=7002, action_id=1, limit=40, period=1, unit="seconds")
    slow = Step(workflow_id=7002, action_id=2, limit=15, period=1, unit="seconds")
    async with local_stack(empty_database, daemons=2) as stack:
        plan = []  # two fast, one slow, ... so both steps arrive at both daemons throughout
        for i in range(120):
            plan.append((f"ap-{stack.portal_id}-7002-f{i}", fast))
            if i % 2:
                plan.append((f"ap-{stack.portal_id}-7002-s{i // 2}", slow))
        await _enroll_all(stack, plan)
        done = await settled_completions(stack, len(plan), timeout_s=25)
    _assert_each_once(done, [cid for cid, _ in plan])
    by_step = {
        name: [c["completedAt"] for c in done if f"-7002-{name[0]}" in c["callbackId"]]
        for name in ("fast", "slow")
    }
    assert len(by_step["fast"]) == 120 and len(by_step["slow"]) == 60
    assert max_per_window(by_step["fast"], 1.0) <= 40
    assert max_per_window(by_step["slow"], 1.0) <= 15
    # Each step really is held to its own rate: 120 at 40/s span 3 windows, 60 at 15/s span 4.
    assert max(by_step["fast"]) - min(by_step["fast"]) >= 2.0
    assert max(by_step["slow"]) - min(by_step["slow"]) >= 3.0


async def test_the_shortest_lease_allowed_sends_nothing_twice_over_a_slow_hubspot(empty_database):
    # Field faults, item 4, scaled down: the shortest lease `config check` allows for the timeout
    # (2 × (2 s + 1 s) = 6 s), two daemons, HubSpot answering every completion inside the
    # timeout. With a lease shorter than a call (6 s lease, 10 s timeout, answers after 9 s),
    # 11 of 20 callbacks went out twice. (Answers after 0.9 s of a 1 s timeout left a loaded
    # machine too little room: a call that timed out is rightly sent again — a repeat that is
    # not the lease's doing.)
    step = Step(workflow_id=7003, action_id=1, limit=5, period=1, unit="seconds")
    overrides = {"release_lease_s": 6.0, "hubspot_timeout_s": 2.0, "poll_interval_s": 0.2}
    async with local_stack(empty_database, daemons=2, overrides=overrides) as stack:
        stack.sandbox_state.set_faults({"latency_s": 1.0})
        ids = [f"ap-{stack.portal_id}-7003-1-{i}" for i in range(20)]
        await _enroll_all(stack, [(cid, step) for cid in ids])
        done = await settled_completions(stack, ids=ids, timeout_s=40)
        repeats = dict(stack.sandbox_state.repeats)
    _assert_each_once(done, ids)
    assert repeats == {}  # no callback was sent while an earlier call on it was on its way


async def test_each_daemon_listens_on_one_connection(empty_database):
    # Structure issue: the scheduler and the config cache each opened a LISTEN connection.
    import psycopg

    from throttled.db.engine import libpq_url

    async with local_stack(empty_database, daemons=2) as stack:
        name = stack.daemons[0].db.engine.url.database
        with psycopg.connect(libpq_url(empty_database)) as conn:
            listening = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query ILIKE 'LISTEN %%'", (name,)).fetchone()[0]
    assert listening == 2  # one per daemon: jobs and config changes on one connection
