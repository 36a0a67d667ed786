"""Scale: the hot queries at 1,000 versus 1,000,000 pending executions, and memory after
10,000 portals were active.

1. Bulk-load (COPY) N pending executions over 10,000 queues and 1,000 portals, one throttle
   job per queue; time one throttle-worker run (the whole transaction: lock, window, take
   100, snooze — on a queue holding 100 pending in both runs, so the work per run is the
   same and only the table size differs) and one claim of 10 jobs (staging included),
   median of repeated runs (each rolled back), at N = 1,000 (the baseline, same run) and
   N = 1,000,000; print the query plans of the hot
   statements so a reader can see the indexes used. Target: ≤ 1.5× the baseline.
2. Portal tasks: 10,000 portals each get one release through the real PortalSenders and
   HubSpot client, answered by a minimal local HTTP server (204, like HubSpot); peak RSS of
   this process against its RSS before, and the tasks still alive after they went idle.
   Target: ≤ 300 MB, tasks exit.

Usage: ``THROTTLED_DATABASE_URL=… .venv/bin/python -m bench.scale``.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import statistics
import sys
import time

import psycopg
import trio

from bench.common import bench_database, markdown_table
from throttled import logs
from throttled.clock import WallClock
from throttled.crypto import KeyRing
from throttled.db import jobs as jobs_sql
from throttled.db import portals as portals_sql
from throttled.db.engine import Database, libpq_url
from throttled.db.executions import Lease
from throttled.db.schema import migrate
from throttled.hubspot.budget import PortalBudget
from throttled.hubspot.client import HubSpotClient
from throttled.hubspot.senders import PortalSenders, SenderConfig
from throttled.hubspot.tokens import TokenStore
from throttled.jobs.scheduler import JobRun
from throttled.throttle.worker import ThrottleWorker

QUEUES, PORTALS = 10_000, 1_000
MEASURED = 10  # queues whose worker runs are timed: 100 pending each in both runs
UTC = dt.UTC


def _load(url: str, pending: int) -> None:
    """COPY queues, executions and jobs in; every queue has pending / QUEUES executions."""
    now = dt.datetime.now(UTC)
    with psycopg.connect(libpq_url(url)) as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY queues (queue_id, portal_id, action_id, max_throughput, time_period, time_unit, "
                          "created_at, updated_at) FROM STDIN") as copy:
                for q in range(QUEUES):
                    copy.write_row((f"queue:{q % PORTALS}:{q}:1:0", q % PORTALS, 1, 100, 1, "seconds", now, now))
            with cur.copy("COPY action_executions (callback_id, portal_id, queue_id, received_at, expires_at) "
                          "FROM STDIN") as copy:
                for i in range(pending):
                    # The measured queues (the first ten, whose jobs are claimed first) hold the
                    # same 100 each at every size; the rest of the backlog fills the others.
                    q = i % MEASURED if i < MEASURED * 100 else MEASURED + i % (QUEUES - MEASURED)
                    copy.write_row((f"cb-{i}", q % PORTALS, f"queue:{q % PORTALS}:{q}:1:0", now, now + dt.timedelta(days=7)))
            with cur.copy("COPY jobs (kind, args, unique_key, portal_id, scheduled_at, inserted_at) FROM STDIN") as copy:
                for q in range(QUEUES):
                    queue_id = f"queue:{q % PORTALS}:{q}:1:0"
                    copy.write_row(("throttle", json.dumps({"queue_id": queue_id, "action_id": 1}),
                                    f"throttle:{queue_id}", q % PORTALS, now, now))
            for p in range(PORTALS):
                cur.execute("INSERT INTO portals (portal_id, status, installed_at, updated_at) VALUES (%s, 'active', %s, %s)",
                            (p, now, now))
        conn.execute("ANALYZE")


def _time_hot_paths(db: Database, repeats: int = 30) -> tuple[float, float]:
    """Median ms of one worker run and of one claim of 10 jobs (each rolled back)."""
    worker = ThrottleWorker(db, WallClock(), submit=None)
    runs, claims = [], []
    for _ in range(repeats):
        with db.engine.connect() as conn:
            trans = conn.begin()
            now = dt.datetime.now(UTC)
            started = time.perf_counter()
            [job] = jobs_sql.claim_due_jobs(conn, "bench", 1, now, now + dt.timedelta(seconds=30))
            claims.append(time.perf_counter() - started)
            started = time.perf_counter()
            worker.run_once(conn, JobRun(job, "bench"), job.args["queue_id"], now)
            runs.append(time.perf_counter() - started)
            trans.rollback()
        with db.engine.connect() as conn:
            trans = conn.begin()
            now = dt.datetime.now(UTC)
            started = time.perf_counter()
            jobs_sql.claim_due_jobs(conn, "bench", 10, now, now + dt.timedelta(seconds=30))
            claims[-1] = time.perf_counter() - started
            trans.rollback()
    return statistics.median(runs) * 1000, statistics.median(claims) * 1000


def _plans(url: str) -> str:
    statements = {  # one of the measured queues: queue:7:7:1:0
        "take pending (worker)": """EXPLAIN SELECT callback_id FROM action_executions WHERE queue_id = 'queue:7:7:1:0'
            AND state = 'pending' AND expires_at > now() AND (not_before IS NULL OR not_before <= now())
            ORDER BY priority DESC, seq LIMIT 100""",
        "recent releases (worker)": """EXPLAIN SELECT released_at FROM action_executions WHERE queue_id = 'queue:7:7:1:0'
            AND state = 'released' AND released_at > now() - interval '1 hour' ORDER BY released_at DESC LIMIT 100""",
        "claim": """EXPLAIN SELECT id FROM jobs WHERE state = 'available' AND scheduled_at <= now()
            ORDER BY priority, scheduled_at, id LIMIT 10 FOR UPDATE SKIP LOCKED""",
    }
    out = []
    with psycopg.connect(libpq_url(url)) as conn:
        for name, sql in statements.items():
            plan = "\n".join(r[0] for r in conn.execute(sql))
            out.append(f"{name}:\n```\n{plan}\n```")
    return "\n".join(out)


async def _null_hubspot(task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Answers every HTTP request 204 No Content (HubSpot's answer to a completion)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])

    async def handle(stream):
        buffer = b""
        async with stream:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, _, rest = buffer.partition(b"\r\n\r\n")
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    if len(rest) < length:
                        break
                    buffer = rest[length:]
                    await stream.send_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    await trio.serve_listeners(handle, listeners)


async def _portal_memory(url: str, portals: int = 10_000) -> tuple[float, float, int, int]:
    """RSS before, peak RSS (MB), tasks alive at the peak, tasks alive after going idle."""
    db = Database(url, pool_size=10)
    db.transaction_sync(migrate)
    ring = KeyRing.single(bytes(32))
    now = dt.datetime.now(UTC)

    def install(conn):
        for p in range(portals):
            portals_sql.save_install(conn, 100_000 + p, ring.encrypt("a", 100_000 + p, "access_token"),
                                     ring.encrypt("r", 100_000 + p, "refresh_token"),
                                     now + dt.timedelta(days=1), [], ring.key_id, now)
    db.transaction_sync(install)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_null_hubspot)
        client = HubSpotClient(f"http://127.0.0.1:{port}", "c", "s", budget=PortalBudget(100, 10))
        queues = PortalSenders(db, WallClock(), TokenStore(db, WallClock(), ring, client), client,
                              SenderConfig(idle_timeout_s=2.0, flush_interval_s=0.05))
        await nursery.start(queues.run)
        lease = now + dt.timedelta(minutes=5)
        peak_tasks = 0
        for p in range(portals):
            await queues.submit(100_000 + p, [Lease(f"m-{p}", 100_000 + p, f"queue:{p}", lease)])
            peak_tasks = max(peak_tasks, queues.active_portals)
        with trio.move_on_after(120):
            while queues.active_portals:
                await trio.sleep(0.5)
        after = queues.active_portals
        await client.aclose()
        nursery.cancel_scope.cancel()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    db.dispose()
    return before, peak, peak_tasks, after


def main() -> None:
    logs.configure("WARNING")
    rows = []
    plans = ""
    for pending in (1_000, 1_000_000):
        with bench_database() as url:
            db = Database(url, pool_size=2)
            db.transaction_sync(migrate)
            started = time.perf_counter()
            _load(url, pending)
            load_s = time.perf_counter() - started
            run_ms, claim_ms = _time_hot_paths(db)
            if pending == 1_000_000:
                plans = _plans(url)
            db.dispose()
        rows.append((pending, load_s, run_ms, claim_ms))
    (_, _, base_run, base_claim), (_, _, big_run, big_claim) = rows
    print(f"## Scale ({QUEUES:,} queues, {PORTALS:,} portals)\n")
    print(markdown_table(
        ["pending executions", "COPY load s", "worker run ms (median)", "claim of 10 ms (median)"],
        [[f"{p:,}", f"{load:.1f}", f"{r:.2f}", f"{c:.2f}"] for p, load, r, c in rows]))
    print(f"\nratio at 1,000,000 vs 1,000 (baseline): worker run {big_run / base_run:.2f}×, claim "
          f"{big_claim / base_claim:.2f}× (target ≤ 1.5×)\n")
    print(plans)
    with bench_database() as url:
        before, peak, tasks, after = trio.run(_portal_memory, url)
    print("\n" + markdown_table(["portals active", "RSS before MB", "peak RSS MB", "tasks at peak", "tasks after idle"],
                                [["10,000", f"{before:.0f}", f"{peak:.0f}", f"{tasks:,}", str(after)]]))
    print(f"\npeak RSS {peak:.0f} MB (target ≤ 300 MB); portal tasks left after going idle: {after}")


if __name__ == "__main__":
    sys.exit(main())
