"""Per-owner limits at scale: one step with a ``partition_key`` of 10,000 distinct owners, each
allowed 1 per minute, released through the real daemon to the sandbox HubSpot over HTTP.

Two rounds in the same run, same daemon settings, same records and the same instant release
(``release_after`` = T0, a moment after storing ends, so every record is due at T0):

- **baseline**: one step *without* a partition key whose limit (10,000 per minute) lets every
  record through at once — one queue, one job;
- **partitioned**: the step limits each of 10,000 owners to 1 per minute, with one record per
  owner — 10,000 queues under the step's, one job each; then a second record per owner arrives,
  due a minute later, to show that waiting owners cost a job row (scheduled), not a task.

Per round: releases/s from T0 to the last completion at the sandbox, the process's peak RSS
growth (the daemon and sandbox share this process: the same in both rounds), live throttle
jobs once drained (0: no idle partition keeps anything), and the worst minute of any owner.

Usage: ``THROTTLED_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
         .venv/bin/python -m bench.partitions [owners]``
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa
import trio

from bench.common import store_held
from throttled import logs
from throttled.testing import Step, enrollment_body, local_stack, max_per_window, scratch_database, server_url

START_DELAY_S = 15
PORTAL_RANGE = 2000


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


async def _store(db, portal: int, step: Step, owners: int, tag: str, t0: float, partitioned: bool) -> None:
    def bodies():
        for o in range(owners):
            body = json.loads(enrollment_body(f"ap-{portal}-{step.workflow_id}-{step.action_id}-{tag}{o}", portal, step))
            body["inputFields"]["release_after"] = str(int(t0 * 1000))
            if partitioned:
                body["inputFields"]["partition_key"] = f"owner-{o}"
            yield body

    await store_held(db, bodies(), batch_size=1000)


async def _live_jobs(db) -> dict[str, int]:
    rows = await db.transaction(lambda conn: conn.execute(sa.text(
        "SELECT state, count(*) FROM jobs WHERE kind = 'throttle' AND state IN "
        "('available', 'scheduled', 'executing', 'retryable') GROUP BY state")).all())
    return {r[0]: r[1] for r in rows}


@dataclass
class Round:
    stored_s: float
    first_wave_s: float
    rate: float  # releases per second in the first wave
    rss_growth: float  # MiB
    waiting: dict[str, int]  # live throttle jobs by state while owners wait for their next minute
    worst: int | None  # the most any owner got in a minute


async def _round(owners: int, partitioned: bool) -> Round:
    url, drop = scratch_database(server_url())
    try:
        async with local_stack(url, overrides={"log_level": "WARNING", "workers": 64, "db_pool_size": 16}) as stack:
            daemon, portal = stack.daemons[0], stack.portal_id
            limit = 1 if partitioned else owners
            step = Step(workflow_id=77, action_id=1, limit=limit, period=1, unit="minutes")
            rss_before = _rss_mib()
            t0 = time.time() + START_DELAY_S
            stored = time.monotonic()
            await _store(daemon.db, portal, step, owners, "a", t0, partitioned)
            stored_s = time.monotonic() - stored
            with trio.fail_after(600):
                while await stack.hubspot.completed() < owners:
                    await trio.sleep(0.5)
            done = await stack.hubspot.completions()
            first_wave_s = max(c["completedAt"] for c in done) - t0
            rss_peak = _rss_mib()
            waiting = {}
            if partitioned:  # a second record per owner: due at T0 but its owner's minute is spent
                await _store(daemon.db, portal, step, owners, "b", t0, partitioned)
                await trio.sleep(3)
                waiting = await _live_jobs(daemon.db)
                rss_peak = max(rss_peak, _rss_mib())
                with trio.fail_after(600):
                    while await stack.hubspot.completed() < 2 * owners:
                        await trio.sleep(0.5)
                done = await stack.hubspot.completions()
            with trio.fail_after(120):
                while await _live_jobs(daemon.db):
                    await trio.sleep(0.5)
            per_owner: dict[str, list[float]] = defaultdict(list)
            for c in done:
                per_owner[c["callbackId"].rsplit("-", 1)[1][1:]].append(c["completedAt"])
            worst = max(max_per_window(t, 60) for t in per_owner.values()) if partitioned else None
    finally:
        drop()
    return Round(stored_s, first_wave_s, owners / max(first_wave_s, 1e-3), rss_peak - rss_before, waiting, worst)


async def main(owners: int) -> None:
    logs.configure("WARNING")
    base = await _round(owners, partitioned=False)
    parts = await _round(owners, partitioned=True)
    print(f"## Partitioned limits ({owners:,} owners, 1 per minute each)\n")
    print("| round | queues | stored in s | first wave released in s | releases/s | RSS growth MiB | "
          "jobs while owners wait | worst owner minute |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| baseline: one step, limit {owners:,}/min, no partition key | 1 | {base.stored_s:.1f} | "
          f"{base.first_wave_s:.1f} | {base.rate:.0f} | {base.rss_growth:.0f} | - | - |")
    waiting = ", ".join(f"{n:,} {state}" for state, n in sorted(parts.waiting.items())) or "none"
    print(f"| partitioned: 1/min per owner | {owners + 1:,} | {parts.stored_s:.1f} | {parts.first_wave_s:.1f} | "
          f"{parts.rate:.0f} | {parts.rss_growth:.0f} | {waiting} | {parts.worst} / 1 |")
    print(f"\npartitioned / baseline release rate = {parts.rate / base.rate:.2f} (each owner is a queue with its own "
          f"job, run up to 50 to a transaction; one portal's callbacks budget, 1,100/s, bounds the baseline); "
          f"live throttle jobs once drained: 0 in both")


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
