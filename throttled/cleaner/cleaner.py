"""The cleaner job, run once a minute (``THROTTLED_CLEANER_INTERVAL``) across all daemons
(a cron job, see ``jobs.cron``).

- prunes completed, cancelled and discarded jobs older than the retention (default 1 day),
  in bounded batches, daemons dead for a day (``nodes``), and spent OAuth install states
  past their expiry;
- prunes finished executions older than their retention (default 7 days; never one whose
  release still counts in its queue's window), in bounded batches;
- marks pending executions whose HubSpot block ran out as expired (never completed);
- counts, per queue with a backlog, the held records that will expire before their turn
  (the longest unchecked first, a bounded number of rows per run), for the status views;
- repairs orphans: a queue with pending executions but no live job. By construction there
  are none (invariant 3); one found is logged as an anomaly and given a job.

Leases that lapsed are rescued by every scheduler within seconds, not here: that must not
wait for the next minute.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import structlog
from sqlalchemy.engine import Connection

from throttled.clock import Clock
from throttled.db import executions as executions_sql
from throttled.db import jobs as jobs_sql
from throttled.db import nodes as nodes_sql
from throttled.db import oauth_states as oauth_states_sql
from throttled.db import queues as queues_sql
from throttled.db.engine import Database
from throttled.jobs.cron import CronJob
from throttled.jobs.outcomes import Complete
from throttled.jobs.scheduler import JobRun
from throttled.service.metrics import Metrics
from throttled.throttle.job import ensure_throttle_job, throttle_job_key
from throttled.throttle.outlook import refresh_expiring

log = structlog.get_logger("throttled.cleaner")

CLEANER_KIND = "cleaner"
_BATCH = 1000
_MAX_BATCHES = 50  # per run; the next run continues
#: Will-expire counts refreshed per run: at most this many queues and held records.
COUNT_QUEUES, COUNT_ROWS = 500, 500_000


def cleaner_cron(interval_s: float = 60.0) -> CronJob:
    """The cleaner's cron job: one run per slot of ``interval_s`` seconds, across all daemons."""
    return CronJob("cleaner", CLEANER_KIND, dt.timedelta(seconds=interval_s))


#: The default (minutely) cleaner cron job.
CLEANER_CRON = cleaner_cron()


class Cleaner:
    """Handler for ``cleaner`` jobs.

    Args:
        job_retention_s: how long finished jobs are kept, seconds.
        execution_retention_s: how long finished executions are kept, seconds.
    """

    def __init__(self, db: Database, clock: Clock, job_retention_s: float = 86400.0, metrics: Metrics | None = None,
                 execution_retention_s: float = 604800.0) -> None:
        self.db = db
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.job_retention = dt.timedelta(seconds=job_retention_s)
        self.execution_retention = dt.timedelta(seconds=execution_retention_s)
        self.orphans_repaired = 0

    async def __call__(self, run: JobRun) -> Complete:
        now = self.clock.now()
        pruned = await self._in_batches(jobs_sql.prune_jobs, now - self.job_retention)
        pruned_executions = await self._in_batches(self._prune_executions, now)
        expired = await self._in_batches(executions_sql.expire_overdue, now)
        await self.db.transaction(nodes_sql.prune, now - dt.timedelta(days=1))
        spent_states = await self._in_batches(oauth_states_sql.prune, now)
        orphans = await self.db.transaction(self._repair_orphans, now)
        self.orphans_repaired += orphans
        self.metrics.orphans.inc(orphans)
        counted = await self._count_expiring(now)
        log.info("cleaner.ran", pruned_jobs=pruned, pruned_executions=pruned_executions, expired_executions=expired,
                 orphans_repaired=orphans, queues_counted=counted, pruned_oauth_states=spent_states)
        return Complete()

    def _prune_executions(self, conn: Connection, now: dt.datetime, limit: int) -> int:
        return executions_sql.prune_finished(conn, now, self.execution_retention, limit)

    async def _count_expiring(self, now: dt.datetime) -> int:
        """Refresh the will-expire counts of up to :data:`COUNT_QUEUES` queues, at most
        :data:`COUNT_ROWS` held records looked at per run; returns how many queues."""
        queue_ids = await self.db.transaction(queues_sql.queues_to_count_expiring, COUNT_QUEUES)
        rows = 0
        for n, queue_id in enumerate(queue_ids):
            if rows >= COUNT_ROWS:
                return n
            rows += (await self.db.transaction(refresh_expiring, queue_id, now)).scanned
        return len(queue_ids)

    async def _in_batches(self, fn: Callable[[Connection, dt.datetime, int], int], when: dt.datetime) -> int:
        total = 0
        for _ in range(_MAX_BATCHES):
            done = await self.db.transaction(fn, when, _BATCH)
            total += done
            if done < _BATCH:
                break
        return total

    def _repair_orphans(self, conn: Connection, now: dt.datetime) -> int:
        orphans = queues_sql.queues_without_live_job(conn, throttle_job_key(""), now)
        for queue_id, portal_id, action_id in orphans:
            log.warning("queue.orphan_repaired", queue_id=queue_id, portal_id=portal_id)
            ensure_throttle_job(conn, queue_id, portal_id, action_id, now)
        return len(orphans)
