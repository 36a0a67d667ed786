"""10,000 queues at 1 per minute: is every queue visited when its window opens?

10,000 workflow steps over 100 portals (HubSpot's callbacks budget is per portal: one portal
could not take 10,000 completions in under 10 s whatever the engine did), each limited to 1
per minute with 3 records held, all due at T0 (``release_after``): an ideal engine releases
each queue's records at T0, T0 + 60 s and T0 + 120 s. The lag of a release is its completion
time at the sandbox minus that ideal time; the table gives its p50/p99/max and the share of
releases within 1 s of their opening (issue 17's target: p99 ≤ 1 s). The baseline in the same
run: the same 30,000 records in one queue per portal (100 queues) allowed 100 per minute each —
the same release rate through a hundredth of the queues.

Usage: ``THROTTLED_DATABASE_URL=… .venv/bin/python -m bench.visits [queues]``
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import time

import trio

from throttled import logs
from throttled.ingest.payload import parse_enrollment
from throttled.ingest.store import store_enrollments
from throttled.testing import Step, enrollment_body, local_stack, scratch_database, server_url
from throttled.throttle.block_length import BlockLimits

BLOCKS = BlockLimits(dt.timedelta(days=7), dt.timedelta(days=30))
EACH = 3
HEAD_START_S = 10
PORTALS = 100


async def _round(queues: int, one_queue: bool) -> tuple[list[float], float, float]:
    """``(lags in seconds, storing s, draining s)``; lags ordered as the records."""
    url, drop = scratch_database(server_url())
    try:
        async with local_stack(url, overrides={"log_level": "WARNING", "workers": 64, "db_pool_size": 16,
                                               "oauth_callbacks_per_minute": 1000}) as stack:
            daemon = stack.daemons[0]
            for p in range(PORTALS):
                await stack.hubspot.install(daemon.url, 2000 + p)
            steps = [Step(workflow_id=0, action_id=1, limit=queues // PORTALS, period=1, unit="minutes")] if one_queue else \
                [Step(workflow_id=q, action_id=1, limit=1, period=1, unit="minutes") for q in range(queues)]
            started = time.monotonic()
            records: dict[str, float] = {}  # callback id -> ideal release (epoch s), set once T0 is known
            batch, plan = [], []
            for k in range(EACH):
                for q in range(queues):
                    step = steps[0] if one_queue else steps[q]
                    plan.append((f"ap-{2000 + q % PORTALS}-{q}-1-{k}", step, k))
            t0 = time.time() + HEAD_START_S + queues * EACH / 1500  # storing runs at about 1,500/s
            for callback_id, step, k in plan:
                body = json.loads(enrollment_body(callback_id, int(callback_id.split("-")[1]), step))
                body["inputFields"]["release_after"] = str(int(t0 * 1000))
                batch.append(parse_enrollment(json.dumps(body).encode()))
                records[callback_id] = t0 + 60 * k
                if len(batch) == 2000:
                    await daemon.db.transaction(store_enrollments, batch, dt.datetime.now(dt.UTC), BLOCKS)
                    batch = []
            if batch:
                await daemon.db.transaction(store_enrollments, batch, dt.datetime.now(dt.UTC), BLOCKS)
            stored_s = time.monotonic() - started
            if time.time() > t0:
                print(f"warning: storing took {stored_s:.0f} s, past T0")
            with trio.fail_after(EACH * 60 + 600):
                while await stack.hubspot.completed() < len(records):
                    await trio.sleep(1)
            drained_s = time.time() - t0
            done = await stack.hubspot.completions()
    finally:
        drop()
    lags = [c["completedAt"] - records[c["callbackId"]] for c in done]
    return lags, stored_s, drained_s


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def main(queues: int) -> None:
    logs.configure("WARNING")
    base, base_stored, base_drained = await _round(queues, one_queue=True)
    many, stored, drained = await _round(queues, one_queue=False)
    print(f"## {queues:,} queues at 1 per minute, {EACH} records each (lag = completion at HubSpot − ideal release)\n")
    print("| round | queues | stored in s | drained in s | lag p50 | lag p99 | lag max | served within 1 s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, n, lags, s, d in ((f"baseline: one queue per portal, {queues // PORTALS} per minute", PORTALS, base,
                                 base_stored, base_drained),
                                (f"{queues:,} queues, 1 per minute each", queues, many, stored, drained)):
        within = sum(1 for lag in lags if lag <= 1.0) / len(lags)
        print(f"| {name} | {n:,} | {s:.0f} | {d:.0f} | {statistics.median(lags):.2f} s | {_pct(lags, 0.99):.2f} s | "
              f"{max(lags):.2f} s | {within:.1%} |")
    print(f"\ntarget: lag p99 ≤ 1 s for the {queues:,} queues over {PORTALS} portals; the baseline releases the same "
          "records through one queue per portal")


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
