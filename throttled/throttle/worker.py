"""The throttle worker: the job handler that releases one queue's executions at its rate.

One live job per queue (the ``throttle:{queue_id}`` unique key). Each run is one
transaction under the queue's row lock: put lapsed releases back in line, count what the
window allows (``throttle.rate``), mark that many pending executions 'releasing' in arrival
order, and — in the same transaction — either snooze the job until the window next opens
or, when nothing is pending or in flight, complete it. Completing under the row lock is
what keeps ingest from adding executions to a queue whose job is finishing (invariant 3).
After the commit the releases go to the portal queue; nothing comes back up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from throttled.clock import Clock
from throttled.db import jobs as jobs_sql
from throttled.db import queues as queues_sql
from throttled.db.engine import Database
from throttled.db.queues import Release
from throttled.jobs.outcomes import Applied, LeaseLost
from throttled.jobs.scheduler import JobRun
from throttled.throttle.rate import Rate, next_opening, slots_open

log = structlog.get_logger("throttled.throttle")

Submit = Callable[[int, Sequence[Release]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Tuning; durations in seconds."""

    release_lease_s: float = 120.0   # a release not acknowledged by then is retried
    in_flight_poll_s: float = 0.25   # re-check this soon while releases await HubSpot
    max_per_run: int = 1000          # most releases one run hands out


class ThrottleWorker:
    """Handler for ``throttle`` jobs.

    Args:
        db: the database.
        clock: the daemon's clock.
        submit: ``async submit(portal_id, releases)`` — the portal queues' entry.
    """

    def __init__(self, db: Database, clock: Clock, submit: Submit, config: WorkerConfig = WorkerConfig()) -> None:
        self.db = db
        self.clock = clock
        self.submit = submit
        self.config = config

    async def __call__(self, run: JobRun) -> Applied:
        queue_id = run.job.args["queue_id"]
        releases = await self.db.transaction(self.run_once, run, queue_id, self.clock.now())
        if releases:
            await self.submit(releases[0].portal_id, releases)
        return Applied()

    def run_once(self, conn, run: JobRun, queue_id: str, now: dt.datetime) -> list[Release]:
        """One tick inside one transaction (blocking; runs in a DB thread).

        Returns the releases to hand to the portal queue after commit.
        Raises:
            LeaseLost: the job was rescued from us; the transaction rolls back.
        """
        queue = queues_sql.lock_queue(conn, queue_id)
        if not jobs_sql.lock_owned_job(conn, run.job.id, run.owner):
            raise LeaseLost(run.job.id)
        if queue is None:
            jobs_sql.complete_job(conn, run.job.id, run.owner, now)
            return []
        queues_sql.requeue_lapsed_releases(conn, queue_id, now)
        rate = Rate.of(queue.max_throughput, queue.time_period, queue.time_unit)
        recent = queues_sql.recent_releases(conn, queue_id, now - rate.period, rate.limit)
        in_flight = queues_sql.count_releasing(conn, queue_id)
        allowed = min(slots_open(rate, recent, in_flight, now), self.config.max_per_run)
        lease_until = now + dt.timedelta(seconds=self.config.release_lease_s)
        releases = queues_sql.take_pending(conn, queue_id, allowed, now, lease_until) if allowed else []
        in_flight += len(releases)
        pending = queues_sql.has_pending(conn, queue_id, now)
        if not pending and in_flight == 0:
            jobs_sql.complete_job(conn, run.job.id, run.owner, now)
        else:
            wake = self._next_run(rate, recent, in_flight, pending, bool(releases), allowed, now)
            jobs_sql.snooze_job(conn, run.job.id, run.owner, wake, now)
        return releases

    def _next_run(
        self, rate: Rate, recent: list[dt.datetime], in_flight: int, pending: bool,
        sent_now: bool, allowed: int, now: dt.datetime,
    ) -> dt.datetime:
        poll = now + dt.timedelta(seconds=self.config.in_flight_poll_s)
        if not pending:
            return poll  # only waiting for in-flight acks, then the job can finish
        if allowed >= self.config.max_per_run:
            return now  # capped, not window-limited: go again at once
        # In-flight sends will be acknowledged at `now` at the earliest, so counting them
        # as sent now gives a lower bound on when the window opens.
        lower = next_opening(rate, [*recent, *([now] * in_flight)], 0, now) or now
        if sent_now or in_flight == 0:
            return lower
        return min(lower, poll)  # acks still pending: look again soon
