"""Periodic safety net run by every scheduler: expire overdue executions, repair orphans.

By construction no queue with pending executions lacks a live job (invariant 3); if one is
found anyway it is logged as an anomaly and given a job. Both statements are safe to run
from several daemons at once (SKIP LOCKED, unique job keys).
"""

from __future__ import annotations

import datetime as dt

import structlog

from throttled.db import queues as queues_sql
from throttled.db.engine import Database
from throttled.ingest.store import ensure_throttle_job, throttle_job_key

log = structlog.get_logger("throttled.maintenance")


class Maintenance:
    """``await Maintenance(db).run(now)`` once per maintenance interval."""

    def __init__(self, db: Database, orphan_check_every: int = 12) -> None:
        self.db = db
        self.orphan_check_every = orphan_check_every
        self._runs = 0
        self.orphans_repaired = 0

    async def run(self, now: dt.datetime) -> None:
        """Expire overdue executions; every ``orphan_check_every`` runs, repair orphans."""
        expired = await self.db.transaction(queues_sql.expire_overdue, now)
        if expired:
            log.info("executions.expired", count=expired)
        self._runs += 1
        if self._runs % self.orphan_check_every == 1:
            repaired = await self.db.transaction(self._repair_orphans, now)
            self.orphans_repaired += repaired

    def _repair_orphans(self, conn, now: dt.datetime) -> int:
        orphans = queues_sql.queues_without_live_job(conn, throttle_job_key(""))
        for queue_id, portal_id in orphans:
            log.warning("queue.orphan_repaired", queue_id=queue_id, portal_id=portal_id)
            ensure_throttle_job(conn, queue_id, portal_id, now)
        return len(orphans)
