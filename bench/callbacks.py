"""Callbacks end to end: completions per second from a large backlog with generous rates,
through the real daemon (worker → portal sender → HTTP) to the sandbox HubSpot, 100
callbacks per batch. Baseline in the same run: the same sandbox driven directly by 16
concurrent httpx tasks posting 100-callback batches as fast as they can — the most this
HubSpot stand-in takes on this machine.

Usage: ``THROTTLED_DATABASE_URL=… .venv/bin/python -m bench.callbacks [executions]``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time

import httpx
import trio

from bench.common import bench_database, markdown_table
from throttled import logs
from throttled.ingest.payload import parse_enrollment
from throttled.ingest.store import store_enrollments
from throttled.settings import MAXIMA
from throttled.testing import Step, enrollment_body, local_stack
from throttled.throttle.block_length import BlockLimits

BLOCKS = BlockLimits(dt.timedelta(days=7), dt.timedelta(days=30))

QUEUES = 50
START_DELAY_S = 15


async def _ceiling(sandbox_url: str, token: str, total: int) -> float:
    """Completions per second when 16 tasks post 100-callback batches straight to the sandbox."""
    sent = 0
    async with httpx.AsyncClient(timeout=30) as http:
        async def poster(n: int) -> None:
            nonlocal sent
            batch = 0
            while sent < total:
                inputs = [{"callbackId": f"ceil-{n}-{batch}-{i}", "outputFields": {"hs_execution_state": "SUCCESS"},
                           "typedOutputs": {}} for i in range(100)]
                sent += 100
                batch += 1
                answer = await http.post(f"{sandbox_url}/automation/v4/actions/callbacks/complete",
                                         json={"inputs": inputs}, headers={"Authorization": f"Bearer {token}"})
                answer.raise_for_status()

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for n in range(16):
                nursery.start_soon(poster, n)
        return sent / (time.perf_counter() - started)


async def main(total: int) -> None:
    logs.configure("WARNING")
    step_of = [Step(workflow_id=q, action_id=1, limit=100_000, period=1, unit="seconds") for q in range(QUEUES)]
    with bench_database() as url:
        async with local_stack(url, overrides={"log_level": "WARNING", "workers": 64, "db_pool_size": 16,
                                               "portal_budget": MAXIMA["portal_budget"]},
                               sandbox_config={"rate_limit_max": 1_000_000_000}) as stack:
            daemon, portal = stack.daemons[0], stack.portal_id
            t0 = time.time() + START_DELAY_S
            batch = []
            for i in range(total):
                step = step_of[i % QUEUES]
                body = json.loads(enrollment_body(f"ap-{portal}-{step.workflow_id}-{i}", portal, step))
                body["inputFields"]["release_after"] = str(int(t0 * 1000))
                batch.append(parse_enrollment(json.dumps(body).encode()))
                if len(batch) == 2000:
                    await daemon.db.transaction(store_enrollments, batch, _now(), BLOCKS)
                    batch = []
            if batch:
                await daemon.db.transaction(store_enrollments, batch, _now(), BLOCKS)
            late = time.time() > t0
            with trio.fail_after(600):
                while len(stack.sandbox_state.completions) < total:
                    await trio.sleep(0.2)
            times = sorted(c["completedAt"] for c in stack.sandbox_state.completions)
            ours = total / (times[-1] - t0)
            token = await stack.daemons[0].tokens.access_token(portal)
            ceiling = await _ceiling(stack.hubspot.sandbox_url, token, total)
            batches = daemon.senders.sent_batches
    print(f"## Callbacks end to end ({total:,} executions, {QUEUES} queues, one portal, generous rates)\n")
    print(markdown_table(["path", "completions/s", "ratio"], [
        ["sandbox driven directly (baseline: 16 tasks, 100 per batch)", f"{ceiling:,.0f}", "1.00"],
        ["throttled: worker → portal sender → HTTP", f"{ours:,.0f}", f"{ours / ceiling:.2f}"],
    ]))
    print(f"\nmean callbacks per batch: {total / max(batches, 1):.1f}; target ≥ 10,000/s"
          + ("; warning: storing outlasted the head start" if late else ""))


def _now():
    import datetime as dt

    return dt.datetime.now(dt.UTC)


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
