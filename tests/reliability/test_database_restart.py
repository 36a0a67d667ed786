"""Scenario 2: PostgreSQL restarted under load, in ``fast`` and ``immediate`` mode — 503 with
Retry-After while it is down, the daemon recovers by itself within 5 s of the database's
return, nothing acknowledged is lost and no lease is left behind."""

from __future__ import annotations

import time

import trio

from throttled.testing import Step

from .harness import (
    Load,
    database_health,
    drain,
    leftovers,
    releasing_now,
    reliability_stack,
    scale,
    settle,
    verdict,
)

STEPS = [Step(workflow_id=11, action_id=1, limit=25, period=1, unit="seconds"),
         Step(workflow_id=12, action_id=1, limit=20, period=2, unit="seconds", mode="smooth")]
DOWN_S = 3.0


async def _restart(cluster, mode: str, stack, load: Load, in_flight: set[str]) -> dict[str, float]:
    """Stop the cluster in ``mode`` for DOWN_S seconds under load; measure the recovery."""
    in_flight |= releasing_now(stack.database_url)
    await trio.to_thread.run_sync(cluster.stop, mode)
    stopped = time.monotonic()
    await trio.sleep(DOWN_S)
    await trio.to_thread.run_sync(cluster.start)
    back, back_wall = time.monotonic(), time.time()
    while not [t for t in load.accepted_at if t > back]:
        await trio.sleep(0.02)
    webhooks_s = min(t for t in load.accepted_at if t > back) - back
    completions = stack.sandbox.state.completions
    while not [c for c in completions if c["completedAt"] > back_wall]:
        await trio.sleep(0.02)
    releases_s = min(c["completedAt"] for c in completions if c["completedAt"] > back_wall) - back_wall
    in_flight |= releasing_now(stack.database_url)
    refused = [(t, retry) for t, retry in load.unavailable if stopped <= t <= back + webhooks_s]
    return {"down_s": back - stopped, "webhooks_s": webhooks_s, "releases_s": releases_s,
            "refused": len(refused), "without_retry_after": sum(1 for _, r in refused if not r or int(r) <= 0)}


async def test_postgres_restart_fast_and_immediate_under_load(pg_cluster, reliability_database, log_dir, report):
    async with reliability_stack(reliability_database, log_dir) as stack:
        load = Load(stack, STEPS, rate=40, prefix="pg")
        in_flight: set[str] = set()
        figures: dict[str, dict[str, float]] = {}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(load.run, scale(14, 40))
            for mode in ("fast", "immediate"):
                await trio.sleep(scale(4, 10))
                figures[mode] = await _restart(pg_cluster, mode, stack, load, in_flight)
        drained_s = await drain(stack, load.acked, timeout_s=90)
        settled_s = await settle(reliability_database, timeout_s=30)
        result = verdict(stack, load.acked, STEPS)
        health = database_health(reliability_database)
        alive = all(d.process.poll() is None for d in stack.daemons)

    row = {"acknowledged (200 BLOCK)": result.acknowledged, "completed at HubSpot": result.completed,
           "lost": len(result.lost)}
    for mode, f in figures.items():
        row |= {f"{mode}: database down (s)": f["down_s"],
                f"{mode}: webhooks answered 503 while down": f["refused"],
                f"{mode}: 503 without Retry-After": f["without_retry_after"],
                f"{mode}: first 200 after the database returned (s)": f["webhooks_s"],
                f"{mode}: first completion after the database returned (s)": f["releases_s"]}
    row |= {"sent again (all in flight at a restart)": len(result.repeated),
            "worst window / limit": result.windows_text,
            "backlog drained after load (s)": drained_s, "leases settled (s)": settled_s,
            "left pending / releasing / stuck jobs": " / ".join(map(str, leftovers(health)))}
    report.add("2. PostgreSQL restart under load", row)

    assert alive  # the daemon rode it out; nothing restarted it
    assert result.lost == [] and result.acknowledged >= load.generated > 0
    for f in figures.values():
        assert f["refused"] > 0 and f["without_retry_after"] == 0
        assert f["webhooks_s"] <= 5 and f["releases_s"] <= 5
    assert set(result.repeated) <= in_flight
    assert result.window_exceeded == []
    assert leftovers(health) == (0, 0, 0)
