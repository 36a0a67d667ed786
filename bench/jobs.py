"""Job table benchmark: empty jobs claimed and completed per second, 1 / 4 / 16 workers,
next to procrastinate draining the same number of empty jobs on the same PostgreSQL server
in the same run (each in a fresh database), PgQueuer draining them 100 per dequeue, and the
physical ceiling of our own tables: one SQL statement claiming and completing 100 jobs,
repeated on one connection (no Python per job). procrastinate and PgQueuer are installed
only for this benchmark, in ``bench/.venv-procrastinate`` and ``bench/.venv-pgqueuer``
(created on first run).

Usage: ``THROTTLED_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
         .venv/bin/python bench/jobs.py [jobs_per_run]``
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
import trio

from throttled.clock import WallClock
from throttled.db import jobs as jobs_sql
from throttled.db.engine import Database, libpq_url
from throttled.db.schema import migrate
from throttled.jobs.outcomes import Complete
from throttled.jobs.scheduler import Scheduler, SchedulerConfig
from throttled.testing import scratch_database, server_url

HERE = Path(__file__).resolve().parent
WORKERS = (1, 4, 16, 100)
PGQUEUER_BATCH = 100


def _bench_python(name: str, *packages: str) -> Path:
    """The interpreter of ``bench/.venv-{name}`` with ``packages`` (made on first use)."""
    venv = HERE / f".venv-{name}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return python


def _procrastinate_python() -> Path:
    return _bench_python("procrastinate", "procrastinate==3.10.0")


def _pgqueuer_python() -> Path:
    return _bench_python("pgqueuer", "pgqueuer==1.6.0", "asyncpg")


async def _ours(url: str, n: int, workers: int) -> float:
    db = Database(url, pool_size=workers + 3)
    db.transaction_sync(migrate)
    now = WallClock().now()
    db.transaction_sync(lambda c: c.execute(sa.text(
        "INSERT INTO jobs (kind, scheduled_at, inserted_at) SELECT 'empty', :now, :now FROM generate_series(1, :n)"),
        {"now": now, "n": n}))
    done = 0
    all_ran = trio.Event()

    async def empty(run):
        nonlocal done
        done += 1
        if done >= n:
            all_ran.set()
        return Complete()

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        config = SchedulerConfig(workers=workers, poll_interval_s=0.05)
        await nursery.start(Scheduler(db, WallClock(), {"empty": empty}, config).run)
        # Wait for the runs without a query (a poll every 20 ms in the event loop cost the
        # scheduler 13 % of it), then for the completer to have written every outcome.
        await all_ran.wait()
        while (await db.transaction(jobs_sql.count_by_state)).get("completed", 0) < n:
            await trio.sleep(0.005)
        seconds = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    db.dispose()
    return seconds


def _theirs(url: str, n: int, workers: int) -> float:
    runner = [str(_procrastinate_python()), str(HERE / "_procrastinate_runner.py"), libpq_url(url), str(n), str(workers)]
    out = subprocess.run(runner, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def _pgqueuer(url: str, n: int) -> float:
    runner = [str(_pgqueuer_python()), str(HERE / "_pgqueuer_runner.py"), libpq_url(url), str(n), str(PGQUEUER_BATCH)]
    out = subprocess.run(runner, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def _ceiling(url: str, n: int) -> float:
    """Seconds for one connection to claim-and-complete ``n`` jobs 100 per statement."""
    db = Database(url, pool_size=2)
    db.transaction_sync(migrate)
    now = WallClock().now()
    db.transaction_sync(lambda c: c.execute(sa.text(
        "INSERT INTO jobs (kind, scheduled_at, inserted_at) SELECT 'empty', :now, :now FROM generate_series(1, :n)"),
        {"now": now, "n": n}))
    step = sa.text("""WITH due AS (SELECT id FROM jobs WHERE state = 'available' ORDER BY priority, scheduled_at, id
                                   LIMIT 100 FOR UPDATE SKIP LOCKED)
                      UPDATE jobs SET state = 'completed', finalized_at = :now, attempt = jobs.attempt + 1
                      FROM due WHERE jobs.id = due.id""")
    started = time.perf_counter()
    while db.transaction_sync(lambda c: c.execute(step, {"now": now}).rowcount):
        pass
    seconds = time.perf_counter() - started
    db.dispose()
    return seconds


def _fresh(server: str, run, *args):
    url, drop = scratch_database(server)
    try:
        return run(url, *args)
    finally:
        drop()


def main(n: int) -> None:
    server = server_url()
    _procrastinate_python()
    _pgqueuer_python()
    pgqueuer = n / _fresh(server, _pgqueuer, n)
    ceiling = n / _fresh(server, _ceiling, n)
    rows = []
    for workers in WORKERS:
        url, drop = scratch_database(server)
        try:
            ours = trio.run(_ours, url, n, workers)
        finally:
            drop()
        url, drop = scratch_database(server)
        try:
            theirs = _theirs(url, n, workers)
        finally:
            drop()
        rows.append((workers, n / ours, n / theirs))
    print(f"## Job table ({n:,} empty jobs claimed and completed per run, same PostgreSQL)\n")
    print("| workers | throttled jobs/s | procrastinate 3.10 jobs/s (baseline) | ratio |")
    print("|---|---|---|---|")
    for workers, ours, theirs in rows:
        print(f"| {workers} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} |")
    best = max(ours for _, ours, _ in rows)
    print(f"\nPgQueuer 1.6 ({PGQUEUER_BATCH} per dequeue): {pgqueuer:,.0f} jobs/s — throttled's best / PgQueuer = "
          f"{best / pgqueuer:.2f} (target ≥ 1)  \nceiling, one statement claiming and completing 100 of our jobs: "
          f"{ceiling:,.0f} jobs/s — throttled's best / ceiling = {best / ceiling:.2f} (target ≥ 0.25)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
