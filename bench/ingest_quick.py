"""Quick ingest benchmark: signed webhooks per second through the real endpoint.

Baseline, same run, same server stack: ``GET /healthz`` (no signature, no database). The
load generator is Python (httpx), which saturates early on a 2-core machine, so both
figures are lower bounds; the full benchmark (wrk) comes with the benchmarks issue.

Usage: ``THROTTLED_DATABASE_URL=… .venv/bin/python bench/ingest_quick.py [seconds]``
(without the variable the embedded PostgreSQL is used).
"""

from __future__ import annotations

import os
import secrets
import sys
import time

import psycopg
import trio

from throttled.db.engine import libpq_url
from throttled.demo.run import _fresh_database, _server_url
from throttled.demo.stack import Step, enrollment_body, local_stack

STEP = Step(workflow_id=1, action_id=1, limit=1, period=1, unit="days")  # nothing gets released
CONCURRENCY = 32


async def _load(make_request, seconds: float) -> tuple[int, list[float]]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    count = 0

    async def client() -> None:
        nonlocal count
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = await make_request()
            assert response.status_code == 200, response.text
            latencies.append(time.monotonic() - started)
            count += 1

    async with trio.open_nursery() as nursery:
        for _ in range(CONCURRENCY):
            nursery.start_soon(client)
    return count, sorted(latencies)


def _row(name: str, count: int, latencies: list[float], seconds: float) -> str:
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return f"| {name} | {count / seconds:,.0f} | {p(0.5):.1f} | {p(0.99):.1f} |"


async def main(seconds: float) -> None:
    url, drop = _fresh_database(_server_url())
    try:
        async with local_stack(url, overrides={"log_level": "WARNING"}) as stack:
            daemon = stack.daemons[0]
            http = stack.hubspot.http
            n = 0

            async def webhook():
                nonlocal n
                n += 1
                body = enrollment_body(f"bench-{secrets.token_hex(6)}-{n}", stack.portal_id, STEP)
                return await stack.hubspot.post(daemon.url, body)

            base_count, base_lat = await _load(lambda: http.get(f"{daemon.url}/healthz"), seconds)
            count, lat = await _load(webhook, seconds)
            sizes = daemon.batcher.batch_sizes
            with psycopg.connect(libpq_url(url)) as conn:
                stored = conn.execute("SELECT count(*) FROM action_executions").fetchone()[0]
    finally:
        drop()
    print(f"ingest, {seconds:.0f} s each, {CONCURRENCY} concurrent Python clients, {os.cpu_count()} cores\n")
    print("| endpoint | req/s | p50 ms | p99 ms |\n|---|---|---|---|")
    print(_row("GET /healthz (baseline: same stack, no DB)", base_count, base_lat, seconds))
    print(_row("POST /api/hubspot/action (signed, stored)", count, lat, seconds))
    print(f"\nratio {count / max(base_count, 1):.2f}; rows stored {stored} of {count} answered; "
          f"batcher: {len(sizes)} commits, mean batch {sum(sizes) / max(len(sizes), 1):.1f}, max {max(sizes, default=0)}")


if __name__ == "__main__":
    trio.run(main, float(sys.argv[1]) if len(sys.argv) > 1 else 5.0)
