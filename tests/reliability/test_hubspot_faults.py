"""Scenario 3: HubSpot's bad days under steady load — 30 % of calls answered 503, a 429
storm, 10 s stalls past the client's timeout, a poisoned callback in the batches, access
tokens dying early. Every good callback completes; the poisoned one fails cleanly; only
callbacks whose answer a stall swallowed are sent again."""

from __future__ import annotations

import time

import psycopg
import trio

from tests.support.metrics import metric_total
from throttled.testing import Step

from .harness import (
    Load,
    database_health,
    drain,
    leftovers,
    reliability_stack,
    scale,
    settle,
    verdict,
)

STEPS = [Step(workflow_id=21, action_id=1, limit=20, period=1, unit="seconds"),
         Step(workflow_id=22, action_id=1, limit=30, period=3, unit="seconds", mode="smooth")]
POISONED = "faults-7"


def _count(requests, status: int) -> int:
    return sum(n for key, n in requests.items() if key.startswith("complete") and key.endswith(f" {status}"))


async def test_sandbox_faults_under_load(reliability_database, log_dir, report):
    # HubSpot's rate window shrunk from 10 s to 2 s (the daemon's budget with it), so that a
    # 429 storm — each 429 makes the client wait out the window — plays out in seconds.
    sandbox_config = {"rate_limit_interval_s": 2.0, "rate_limit_max": 22}
    async with reliability_stack(reliability_database, log_dir, sandbox_config=sandbox_config,
                                 env={"THROTTLED_PORTAL_BUDGET": "20", "THROTTLED_PORTAL_BUDGET_WINDOW": "2"}) as stack:
        state = stack.sandbox.state
        load = Load(stack, STEPS, rate=16, prefix="faults")
        await stack.set_faults(error_rate=0.3, seed=7, poison_callback_ids=[POISONED])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(load.run, scale(14, 45))
            await trio.sleep(scale(3, 10))
            stall_from = time.time()
            await stack.set_faults(stall_s=10.0)
            await trio.sleep(scale(5, 12))
            await stack.set_faults(stall_s=0.0)
            stall_until = time.time()
            await trio.sleep(scale(1, 5))
            await stack.set_faults(rate_limit_storm=4)
            await trio.sleep(scale(3, 10))
            await stack.set_faults(token_lifetime_s=2.0)  # new tokens die after 2 s
            expired = await stack.hubspot.http.post(f"{stack.sandbox.url}/_sandbox/tokens/expire",
                                                    json={"portal_id": stack.portal_id})
            expired.raise_for_status()
            await trio.sleep(scale(1, 5))
        tokens_before_drain = sum(state.token_calls.values())
        await stack.clear_faults()  # HubSpot's bad day ends; the poisoned callback stays refused
        await stack.set_faults(poison_callback_ids=[POISONED])
        drained_s = await drain(stack, set(load.acked) - {POISONED}, timeout_s=120)
        settled_s = await settle(reliability_database, timeout_s=40)
        result = verdict(stack, load.acked, STEPS)
        health = database_health(reliability_database)
        requests = dict(state.requests)
        token_calls = sum(state.token_calls.values())
        # Completed while a stall held the answer back: the client timed out not knowing.
        swallowed = {c["callbackId"] for c in state.completions if stall_from <= c["completedAt"] <= stall_until}
        timeouts = int(await metric_total(stack.hubspot.http, stack.daemons[0].admin_url,
                                          "throttled_hubspot_calls_total", status="timeout"))
        with psycopg.connect(reliability_database) as conn:
            poisoned = conn.execute("SELECT state, last_failure_reason FROM action_executions WHERE callback_id = %s",
                                    (POISONED,)).fetchone()

    lost = [cid for cid in result.lost if cid != POISONED]
    report.add("3. HubSpot faults under load", {
        "acknowledged (200 BLOCK)": result.acknowledged,
        "completed at HubSpot": result.completed,
        "lost (good callbacks not completed)": len(lost),
        "completion calls answered 503 (30 % fault)": _count(requests, 503),
        "completion calls answered 429 (storm)": _count(requests, 429),
        "completion calls timed out (10 s stalls, 2 s client timeout)": timeouts,
        "callbacks completed during the stall": len(swallowed),
        "sent again (all completed during the stall)": len(result.repeated),
        "token calls (install + refreshes after early expiry)": token_calls,
        "token calls after the faults ended": token_calls - tokens_before_drain,
        "poisoned callback": f"{poisoned[0]} ({poisoned[1][:40]}…)" if poisoned else "missing",
        "worst window / limit": result.windows_text,
        "backlog drained after the faults ended (s)": drained_s, "leases settled (s)": settled_s,
        "left pending / releasing / stuck jobs": " / ".join(map(str, leftovers(health))),
    })
    assert lost == [] and result.acknowledged >= load.generated > 0
    assert POISONED in load.acked and POISONED not in result.repeated
    assert poisoned is not None and poisoned[0] == "failed"
    assert _count(requests, 503) > 0 and _count(requests, 429) > 0 and swallowed
    assert token_calls >= 2  # the early expiry forced at least one refresh
    assert set(result.repeated) <= swallowed
    assert result.window_exceeded == []
    assert leftovers(health) == (0, 0, 0)
