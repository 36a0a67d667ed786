"""Webhook latency while operators watch: 1,000,000 finished executions in the table and 12
browsers reloading ``/admin`` (and Prometheus scraping ``/metrics``) against one daemon.

A daemon runs as its own process (``throttled run``) on a scratch database COPY-loaded with
1,000 queues and 1,000,000 released executions (acknowledged over the last six days, so no
retention prunes them during the run). This process sends signed webhooks one after another
and times each answer: first alone (the baseline, same run), then while 12 viewers fetch
``/admin`` in a loop and one fetches ``/metrics`` every second. It prints p50/p99 of the
webhook answers and how long a page took.

Usage: ``THROTTLED_DATABASE_URL=… .venv/bin/python -m bench.admin_load [webhooks]``.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import statistics
import subprocess
import sys
import time

import httpx
import psycopg
import trio

from bench.common import bench_database, markdown_table
from throttled.crypto import generate_key
from throttled.db.engine import Database, libpq_url
from throttled.db.schema import migrate
from throttled.hubspot.signatures import SignedRequest, signed_headers
from throttled.testing import ACTION_PATH, Step, enrollment_body, free_port

QUEUES, FINISHED, VIEWERS = 1_000, 1_000_000, 12
PORTAL = 777
SECRET = "bench-secret-" + secrets.token_hex(8)
STEP = Step(workflow_id=1, action_id=1, limit=100_000, period=1, unit="seconds")  # never installed: held


def _load(url: str) -> None:
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(libpq_url(url)) as conn, conn.cursor() as cur:
        with cur.copy("COPY queues (queue_id, portal_id, action_id, max_throughput, time_period, time_unit, "
                      "created_at, updated_at) FROM STDIN") as copy:
            for q in range(QUEUES):
                copy.write_row((f"queue:{PORTAL}:{q}:1:0", PORTAL, 1, 100, 1, "hours", now, now))
        with cur.copy("COPY action_executions (callback_id, portal_id, queue_id, received_at, expires_at, state, "
                      "released_at) FROM STDIN") as copy:
            for i in range(FINISHED):
                at = now - dt.timedelta(seconds=60 + (i * 518_400 // FINISHED))  # spread over six days
                copy.write_row((f"done-{i}", PORTAL, f"queue:{PORTAL}:{i % QUEUES}:1:0", at, at + dt.timedelta(days=7),
                                "released", at))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE action_executions")


async def _webhooks(client: httpx.AsyncClient, url: str, count: int, tag: str) -> list[float]:
    """Send ``count`` signed webhooks one after another; their answer times, seconds."""
    times = []
    for i in range(count):
        body = enrollment_body(f"ap-{PORTAL}-{tag}-{i}", PORTAL, STEP)
        headers = signed_headers(SECRET, SignedRequest("POST", url + ACTION_PATH, body), int(time.time() * 1000))
        started = time.perf_counter()
        response = await client.post(url + ACTION_PATH, content=body, headers=headers)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return times


async def _view(client: httpx.AsyncClient, url: str, pages: list[float], stop: trio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await client.get(url, timeout=60)
        pages.append(time.perf_counter() - started)


async def _scrape(client: httpx.AsyncClient, url: str, stop: trio.Event) -> None:
    while not stop.is_set():
        await client.get(url, timeout=60)
        await trio.sleep(1.0)


def _ms(values: list[float], q: float) -> str:
    return f"{statistics.quantiles(values, n=100)[int(q * 100) - 1] * 1000:.1f}" if len(values) > 1 else "-"


async def main(count: int) -> None:
    with bench_database() as url:
        db = Database(url, pool_size=2)
        db.transaction_sync(migrate)
        db.dispose()
        started = time.monotonic()
        _load(url)
        print(f"loaded {FINISHED:,} finished executions over {QUEUES:,} queues in {time.monotonic() - started:.0f} s")
        port, admin_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("THROTTLED_", "HUBSPOT_"))} | {
            "THROTTLED_DATABASE_URL": url, "THROTTLED_BIND": f"127.0.0.1:{port}",
            "THROTTLED_ADMIN_BIND": f"127.0.0.1:{admin_port}", "HUBSPOT_CLIENT_SECRET": SECRET,
            "THROTTLED_ENCRYPTION_KEY": generate_key(), "THROTTLED_LOG_LEVEL": "WARNING"}
        daemon = await trio.lowlevel.open_process([sys.executable, "-m", "throttled", "run"], env=env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
        try:
            async with httpx.AsyncClient(timeout=30) as client, httpx.AsyncClient(
                    limits=httpx.Limits(max_connections=VIEWERS + 2)) as viewers:
                with trio.fail_after(120):
                    while True:
                        try:
                            if (await client.get(base + "/readyz")).status_code == 200:
                                break
                        except httpx.HTTPError:
                            pass
                        await trio.sleep(0.2)
                alone = await _webhooks(client, base, count, "alone")
                pages: list[float] = []
                stop = trio.Event()
                async with trio.open_nursery() as nursery:
                    for _ in range(VIEWERS):
                        nursery.start_soon(_view, viewers, admin + "/admin", pages, stop)
                    nursery.start_soon(_scrape, viewers, admin + "/metrics", stop)
                    await trio.sleep(2.0)  # the viewers are busy
                    watched = await _webhooks(client, base, count, "watched")
                    stop.set()
        finally:
            daemon.terminate()
            with trio.move_on_after(30):
                await daemon.wait()
            daemon.kill()
    print(f"\n## Webhooks while operators watch ({FINISHED:,} finished executions, {VIEWERS} /admin viewers)\n")
    print(markdown_table(
        ["webhooks", "answers", "p50 ms", "p99 ms", "max ms"],
        [["alone (baseline, same run)", str(len(alone)), _ms(alone, 0.5), _ms(alone, 0.99), f"{max(alone) * 1000:.1f}"],
         [f"with {VIEWERS} /admin viewers + /metrics", str(len(watched)), _ms(watched, 0.5), _ms(watched, 0.99),
          f"{max(watched) * 1000:.1f}"]]))
    print(f"\n/admin pages served meanwhile: {len(pages)}, p50 {_ms(pages, 0.5)} ms, p99 {_ms(pages, 0.99)} ms; "
          f"p99 with viewers / alone = {statistics.quantiles(watched, n=100)[98] / statistics.quantiles(alone, n=100)[98]:.1f}")


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 300)
