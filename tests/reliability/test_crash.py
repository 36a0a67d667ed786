"""Scenario 1: ``kill -9`` of a daemon under steady load, then a restart — every
acknowledged enrollment completes; only those in flight at the kill may be sent twice."""

from __future__ import annotations

import time

import trio

from throttled.demo.stack import Step

from .harness import Load, database_health, drain, leftovers, releasing_now, reliability_stack, scale, settle, verdict

# The third step's period outlasts the release lease: a send whose answer a crash lost must
# still count in its window when the lease lapses.
STEPS = [Step(workflow_id=1, action_id=1, limit=20, period=1, unit="seconds"),
         Step(workflow_id=2, action_id=1, limit=30, period=2, unit="seconds", mode="smooth"),
         Step(workflow_id=3, action_id=1, limit=100, period=12, unit="seconds")]


async def test_kill_9_under_load_then_restart_loses_nothing(reliability_database, log_dir, report):
    kills = int(scale(2, 5))
    async with reliability_stack(reliability_database, log_dir) as stack:
        daemon, http = stack.daemons[0], stack.hubspot.http
        load = Load(stack, STEPS, rate=30, prefix="crash")
        in_flight: set[str] = set()
        downtime: list[float] = []
        await stack.set_faults(latency_s=0.3)  # HubSpot answers slowly: sends are in flight longer
        async with trio.open_nursery() as nursery:
            nursery.start_soon(load.run, scale(12, 40))
            for _ in range(kills):
                await trio.sleep(scale(4, 6))
                with trio.move_on_after(3):  # kill while a batch is on its way to HubSpot
                    while not releasing_now(reliability_database):
                        await trio.sleep(0.01)
                await daemon.kill()
                killed = time.monotonic()
                in_flight |= releasing_now(reliability_database)
                await trio.sleep(1)
                await daemon.start(http)
                downtime.append(time.monotonic() - killed)
        drained_s = await drain(stack, load.acked, timeout_s=90)
        settled_s = await settle(reliability_database, timeout_s=30)
        result = verdict(stack, load.acked, STEPS)
        health = database_health(reliability_database)

    report.add("1. kill -9 under load", {
        "kills (SIGKILL, restart after 1 s)": kills,
        "webhooks sent (incl. HubSpot-style retries)": sum(load.statuses.values()),
        "acknowledged (200 BLOCK)": result.acknowledged,
        "completed at HubSpot": result.completed,
        "lost": len(result.lost),
        "in flight at the kills": len(in_flight),
        "sent again (all in flight at a kill)": len(result.repeated),
        "worst window / limit": result.windows_text,
        "seconds down per kill (kill → ready)": max(downtime),
        "backlog drained after load (s)": drained_s,
        "leases settled after the backlog (s)": settled_s,
        "left pending / releasing / stuck jobs": " / ".join(map(str, leftovers(health))),
    })
    assert result.acknowledged >= load.generated > 0
    assert result.lost == []
    assert in_flight  # the kills did cut sends on their way to HubSpot
    assert set(result.repeated) <= in_flight
    assert result.window_exceeded == []
    assert leftovers(health) == (0, 0, 0)
