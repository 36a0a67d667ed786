"""Periodic jobs declared in code, inserted only by the leader, one per time slot.

Slots are fixed intervals counted from the Unix epoch (a minutely job's slots start at
:00 of every minute, UTC). Each slot's job carries the unique key ``cron:{name}:{slot}``
and is inserted only if that key was never inserted before, in any state — so with three
daemons, a leader change or a restart, a minutely job still runs once per minute.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio
from sqlalchemy.engine import Connection

from throttled.clock import Clock
from throttled.db import jobs as jobs_sql
from throttled.db.engine import Database, DatabaseUnavailable
from throttled.jobs.leader import Leadership

log = structlog.get_logger("throttled.jobs.cron")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_RETRY = dt.timedelta(seconds=1)


@dataclass(frozen=True)
class CronJob:
    """Run a job of ``kind`` once every ``every``."""

    name: str
    kind: str
    every: dt.timedelta
    args: dict[str, Any] = field(default_factory=dict)

    def slot_start(self, now: dt.datetime) -> dt.datetime:
        """Start of the slot ``now`` falls in."""
        return _EPOCH + self.every * ((now - _EPOCH) // self.every)

    def slot_key(self, now: dt.datetime) -> str:
        """Unique key of the slot ``now`` falls in."""
        return f"cron:{self.name}:{self.slot_start(now).strftime('%Y-%m-%dT%H:%M:%SZ')}"


class Cron:
    """Inserts each :class:`CronJob`'s slot job while ``leadership`` is held."""

    def __init__(self, db: Database, clock: Clock, leadership: Leadership, jobs: list[CronJob]) -> None:
        self.db = db
        self.clock = clock
        self.leadership = leadership
        self.jobs = jobs
        self.inserted = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Until cancelled: at every slot boundary (and on becoming leader), insert."""
        task_status.started()
        while True:
            now = self.clock.now()
            wake = min(job.slot_start(now) + job.every for job in self.jobs)
            if self.leadership.is_leader:
                try:
                    self.inserted += await self.db.transaction(self._insert_due, now)
                except DatabaseUnavailable as exc:
                    log.warning("cron.db_unavailable", error=str(exc))
                    wake = min(wake, now + _RETRY)  # do not miss the slot over a short outage
            with trio.move_on_after(max(0.0, (wake - self.clock.now()).total_seconds())):
                await self.leadership.gained.wait()

    def _insert_due(self, conn: Connection, now: dt.datetime) -> int:
        inserted = 0
        for job in self.jobs:
            if jobs_sql.insert_slot_job(conn, job.kind, job.args, now, job.slot_key(now)):
                inserted += 1
                log.info("cron.inserted", name=job.name, slot=job.slot_key(now))
        return inserted
