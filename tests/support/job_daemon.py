"""A scheduler in its own process, for kill -9 tests: ``python -m tests.support.job_daemon URL LEASE_S``.

Its ``hang`` handler prints ``claimed <job id>`` and then never returns, so the test can
SIGKILL the process while the job is executing and leased.
"""

from __future__ import annotations

import sys

import trio

from throttled.clock import WallClock
from throttled.db.engine import Database
from throttled.jobs.scheduler import Scheduler, SchedulerConfig


async def _hang(run):
    print(f"claimed {run.job.id}", flush=True)
    await trio.sleep_forever()


async def main(url: str, lease_s: float) -> None:
    db = Database(url, pool_size=2)
    scheduler = Scheduler(db, WallClock(), {"hang": _hang}, SchedulerConfig(workers=1, poll_interval_s=0.1, lease_s=lease_s))
    await scheduler.run()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], float(sys.argv[2]))
