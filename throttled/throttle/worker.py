"""The throttle worker: the job handler that releases one queue's executions at its rate.

One live job per queue (the ``throttle:{queue_id}`` unique key). Each run is one
transaction under the queue's row lock: put lapsed releases back in line, see what blocks
the queue (pause, hold, business hours), count what the window allows (``throttle.rate``),
mark that many eligible executions 'releasing' (priority, then arrival order) and — in the
same transaction — either snooze the job until it can do more or, when nothing is pending
or in flight, complete it. Completing under the row lock is what keeps ingest from adding
executions to a queue whose job is finishing (invariant 3). After the commit the releases
go to the portal sender; nothing comes back up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.engine import Connection

from throttled.clock import Clock
from throttled.db import executions as executions_sql
from throttled.db import jobs as jobs_sql
from throttled.db import queues as queues_sql
from throttled.db.engine import Database
from throttled.db.executions import Lease
from throttled.db.queues import ConfigRow
from throttled.jobs.outcomes import Applied, LeaseLost
from throttled.jobs.scheduler import JobRun
from throttled.logs import OncePer
from throttled.service.metrics import Metrics
from throttled.states import PortalStatus, QueueState
from throttled.throttle.policy import blocked_until, effective_settings
from throttled.throttle.rate import Throttle

log = structlog.get_logger("throttled.throttle")

Submit = Callable[[int, Sequence[Lease]], Awaitable[None]]
ConfigLookup = Callable[[int, int | None], Awaitable[ConfigRow | None]]


async def _no_overrides(portal_id: int, action_id: int | None) -> None:
    return None


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Tuning; durations in seconds."""

    release_lease_s: float = 120.0   # a release not acknowledged by then is retried
    call_s: float = 10.0             # the longest HubSpot call (THROTTLED_HUBSPOT_TIMEOUT)
    in_flight_poll_s: float = 0.25   # re-check this soon while releases await HubSpot
    max_per_run: int = 1000          # most releases one run hands out


class ThrottleWorker:
    """Handler for ``throttle`` jobs.

    Args:
        db: the database.
        clock: the daemon's clock.
        submit: ``async submit(portal_id, releases)`` — the portal senders' entry.
        overrides: ``async lookup(portal_id, action_id) -> ConfigRow | None`` (cached).
    """

    def __init__(self, db: Database, clock: Clock, submit: Submit, config: WorkerConfig = WorkerConfig(),
                 overrides: ConfigLookup = _no_overrides, metrics: Metrics | None = None) -> None:
        self.db = db
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.submit = submit
        self.config = config
        self.overrides = overrides
        self._unusable_portals = OncePer(600.0)  # "its portal cannot be called": once per portal per 10 min

    async def __call__(self, run: JobRun) -> Applied:
        queue_id = run.job.args["queue_id"]
        action_id = run.job.args.get("action_id")
        portal_id = run.job.portal_id  # set on every throttle job
        override = await self.overrides(portal_id, action_id) if action_id is not None and portal_id is not None else None
        releases = await self.db.transaction(self.run_once, run, queue_id, self.clock.now(), override)
        self.metrics.worker_runs.inc()
        if releases:
            await self.submit(releases[0].portal_id, releases)
        return Applied()

    def run_once(self, conn: Connection, run: JobRun, queue_id: str, now: dt.datetime,
                 override: ConfigRow | None = None) -> list[Lease]:
        """One tick inside one transaction (blocking; runs in a DB thread).

        ``override`` is the cached operator override; a stale one (its stamp differs from the
        database's) is read again here. Returns the releases to hand to the portal sender after
        commit.
        Raises:
            LeaseLost: the job was rescued from us; the transaction rolls back.
        """
        locked = queues_sql.lock_queue(conn, queue_id, now)
        if not jobs_sql.lock_owned_job(conn, run.job.id, run.owner):
            raise LeaseLost(run.job.id)
        if locked is None:
            jobs_sql.complete_job(conn, run.job.id, run.owner, now)
            return []
        queue = locked.queue
        if queue.action_id is not None and locked.override_stamp != (override.updated_at if override else None):
            # The cached override is older than the database's: an operator's change woke this
            # job before its NOTIFY reached this daemon's cache. Read it here, or the snooze
            # below would follow the old rate (an old "1 per day" would hold for a day).
            override = queues_sql.get_config(conn, queue.portal_id, queue.action_id)
        if locked.lapsed:
            executions_sql.requeue_lapsed_releases(conn, queue_id, now, self.config.call_s)
        settings = effective_settings(queue, override)
        in_flight = locked.releasing - locked.lapsed
        eligible, next_due = executions_sql.pending_outlook(conn, queue_id, now)
        blocked = blocked_until(queue, settings.hours, now, locked.portal)
        if blocked is not None and eligible and (locked.portal is None or locked.portal[0] != PortalStatus.ACTIVE):
            self._portal_unusable(queue.portal_id, locked.portal, now)
        releases: list[Lease] = []
        recent: list[dt.datetime] = []
        throttle = Throttle.for_mode(settings.mode, settings.rate)
        if blocked is None and eligible:
            allowed = self.config.max_per_run
            if queue.state != QueueState.DRAINING:
                recent = executions_sql.recent_releases(conn, queue_id, now - throttle.longest_period, throttle.history)
                allowed = min(allowed, throttle.slots_open(recent, in_flight, now))
            lease_until = now + dt.timedelta(seconds=self.config.release_lease_s)
            releases = executions_sql.take_pending(conn, queue_id, allowed, now, lease_until, run.owner) if allowed else []
            if not allowed:
                self.metrics.window_full.inc()
            in_flight += len(releases)
            eligible, next_due = executions_sql.pending_outlook(conn, queue_id, now)
        if next_due is None and in_flight == 0:  # nothing waits: the job is done
            if queue.state == QueueState.DRAINING:
                queues_sql.set_state(conn, queue_id, QueueState.ACTIVE, now)
            jobs_sql.complete_job(conn, run.job.id, run.owner, now)
        else:
            if queue.state == QueueState.DRAINING and eligible:
                wake = now  # an operator asked for the backlog now: no rate, go again at once
            else:
                wake = self._next_run(throttle, recent, in_flight, eligible, next_due, blocked, bool(releases), now)
            jobs_sql.snooze_job(conn, run.job.id, run.owner, wake, now)
        return releases

    def _portal_unusable(self, portal_id: int, portal: tuple[str, dt.datetime | None] | None, now: dt.datetime) -> None:
        missed = self._unusable_portals.due(portal_id, now.timestamp())
        if missed is not None:
            log.warning("queue.portal_unusable", portal_id=portal_id,
                        status=portal[0] if portal else "not installed", queues_waiting_since_last=missed,
                        note="enrollments wait until the app is installed on this portal")

    def _next_run(
        self, throttle: Throttle, recent: list[dt.datetime], in_flight: int, eligible: bool,
        next_due: dt.datetime | None, blocked: dt.datetime | None, sent_now: bool, now: dt.datetime,
    ) -> dt.datetime:
        poll = now + dt.timedelta(seconds=self.config.in_flight_poll_s)
        if blocked is not None:
            return min(blocked, poll) if in_flight else blocked
        if not eligible:
            # Waiting for in-flight acks, or for a "release no earlier than" time.
            return min(next_due, poll) if next_due and in_flight else (next_due or poll)
        # In-flight sends will be acknowledged at `now` at the earliest, so counting them as
        # sent now gives a lower bound on when the window opens.
        lower = throttle.next_opening([*recent, *([now] * in_flight)], 0, now) or now
        if sent_now or in_flight == 0:
            return lower
        return min(lower, poll)  # acks still pending: look again soon
