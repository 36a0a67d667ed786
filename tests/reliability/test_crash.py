"""Scenario 1: ``kill -9`` of a daemon under steady load, then a restart — every
acknowledged enrollment completes; only those in flight at the kill may be sent twice."""

from __future__ import annotations

import time

import trio

from tests.support.waiting import wait_until
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


async def test_restart_after_a_crash_with_sends_in_flight_resumes_within_a_liveness_ttl(reliability_database, log_dir,
                                                                                       report):
    # Field faults, item 6: HubSpot answering after 8 s, 80 enrollments at 40/s, the daemon
    # killed once the first completion reached HubSpot; with the default 120 s release lease a
    # restarted daemon released nothing of the queue for 119-120 s. Now releases never put on
    # the wire come back once the dead daemon's liveness lapses (THROTTLED_LEADER_TTL), and
    # those on the wire count in the window only until their call could have ended.
    step = Step(workflow_id=6, action_id=1, limit=20, period=1, unit="seconds")
    env = {"THROTTLED_RELEASE_LEASE": "120", "THROTTLED_HUBSPOT_TIMEOUT": "10", "THROTTLED_LEADER_TTL": "10",
           "THROTTLED_JOB_LEASE": "30"}
    async with reliability_stack(reliability_database, log_dir, env=env) as stack:
        daemon, http, state = stack.daemons[0], stack.hubspot.http, stack.sandbox.state
        await stack.set_faults(latency_s=8.0)
        load = Load(stack, [step], rate=40, prefix="resume")
        await load.run(2.0)
        await wait_until(lambda: state.completions, timeout_s=20, what="a first completion at HubSpot")
        await daemon.kill()
        on_the_wire = releasing_now(reliability_database)
        await stack.clear_faults()
        restarted = time.time()
        await daemon.start(http)
        first_after = await wait_until(
            lambda: next((c["completedAt"] for c in state.completions if c["completedAt"] > restarted), None),
            timeout_s=60, what="a completion after the restart")
        drained_s = await drain(stack, load.acked, timeout_s=60)
        result = verdict(stack, load.acked, [step])

    resumed_s = first_after - restarted
    report.add("1b. restart after a crash with sends in flight", {
        "acknowledged (200 BLOCK)": result.acknowledged,
        "leased at the kill (on the wire or waiting behind)": len(on_the_wire),
        "seconds from restart to the next completion (before: 119-120)": resumed_s,
        "backlog drained after the first completion (s)": drained_s,
        "lost": len(result.lost),
        "worst window / limit": result.windows_text,
    })
    assert result.lost == [] and result.window_exceeded == []
    assert on_the_wire  # the kill did leave releases leased
    assert resumed_s < 30, resumed_s  # one liveness TTL (10 s) plus a rescue pass, not the 120 s lease
