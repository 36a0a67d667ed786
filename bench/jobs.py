"""Job table benchmark: empty jobs claimed and completed per second, 1 / 4 / 16 workers,
next to procrastinate draining the same number of empty jobs on the same PostgreSQL server
in the same run (each in a fresh database). procrastinate is installed only for this
benchmark, in ``bench/.venv-procrastinate`` (created on first run).

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
VENV = HERE / ".venv-procrastinate"
WORKERS = (1, 4, 16)


def _procrastinate_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "procrastinate==3.10.0"], check=True)
    return python


async def _ours(url: str, n: int, workers: int) -> float:
    db = Database(url, pool_size=workers + 3)
    db.transaction_sync(migrate)
    now = WallClock().now()
    db.transaction_sync(lambda c: c.execute(sa.text(
        "INSERT INTO jobs (kind, scheduled_at, inserted_at) SELECT 'empty', :now, :now FROM generate_series(1, :n)"),
        {"now": now, "n": n}))
    done = 0

    async def empty(run):
        nonlocal done
        done += 1
        return Complete()

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        config = SchedulerConfig(workers=workers, poll_interval_s=0.05)
        await nursery.start(Scheduler(db, WallClock(), {"empty": empty}, config).run)
        while db.transaction_sync(jobs_sql.count_by_state).get("completed", 0) < n:
            await trio.sleep(0.02)
        seconds = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    db.dispose()
    return seconds


def _theirs(url: str, n: int, workers: int) -> float:
    runner = [str(_procrastinate_python()), str(HERE / "_procrastinate_runner.py"), libpq_url(url), str(n), str(workers)]
    out = subprocess.run(runner, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main(n: int) -> None:
    server = server_url()
    _procrastinate_python()
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


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
