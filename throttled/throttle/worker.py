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
from dataclasses import dataclass, field

import structlog
import trio
from sqlalchemy.engine import Connection

from throttled.clock import Clock
from throttled.db import executions as executions_sql
from throttled.db import jobs as jobs_sql
from throttled.db import queues as queues_sql
from throttled.db.engine import Database
from throttled.db.executions import Lease
from throttled.db.queues import ConfigRow, LockedQueue
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


@dataclass(eq=False)
class _Tick:
    """One queue's run inside :meth:`ThrottleWorker.run_many`: what was read under its lock
    and what the run decided."""

    run: JobRun
    state: LockedQueue
    throttle: Throttle
    blocked: dt.datetime | None
    in_flight: int
    eligible: bool = False
    next_due: dt.datetime | None = None
    recent: list[dt.datetime] = field(default_factory=list)
    releases: list[Lease] = field(default_factory=list)

    @property
    def queue_id(self) -> str:
        return self.state.queue.queue_id


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Tuning; durations in seconds."""

    release_lease_s: float = 120.0   # a release not acknowledged by then is retried
    call_s: float = 10.0             # the longest HubSpot call (THROTTLED_HUBSPOT_TIMEOUT)
    in_flight_poll_s: float = 0.25   # re-check this soon while releases await HubSpot
    max_per_run: int = 1000          # most releases one run hands out
    max_ack_wait_s: float = 1.0      # the most a next run is put off for acknowledgements to come


class ThrottleWorker:
    """Handler for ``throttle`` jobs.

    Args:
        db: the database.
        clock: the daemon's clock.
        submit: ``async submit(portal_id, releases)`` — the portal senders' entry.
        overrides: ``async lookup(portal_id, action_id) -> ConfigRow | None`` (cached).
        ack_latency: ``() -> seconds`` from a run's hand-over to its releases' acknowledgement
            being written (the senders' recent average). A window counts a release from its
            acknowledgement, so a queue that just released cannot open before then: its next
            run is put off by that much (at most ``max_ack_wait_s``) instead of running early,
            finding the window still full and running again. Safety never depends on it.
    """

    def __init__(self, db: Database, clock: Clock, submit: Submit, config: WorkerConfig = WorkerConfig(),
                 overrides: ConfigLookup = _no_overrides, metrics: Metrics | None = None,
                 ack_latency: Callable[[], float] = lambda: 0.0) -> None:
        self.db = db
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.submit = submit
        self.config = config
        self.overrides = overrides
        self.ack_latency = ack_latency
        self._unusable_portals = OncePer(600.0)  # "its portal cannot be called": once per portal per 10 min

    async def __call__(self, run: JobRun) -> Applied:
        await self.run_batch([run])
        return Applied()

    async def run_batch(self, runs: Sequence[JobRun]) -> None:
        """Run several claimed throttle jobs (distinct queues) in one transaction — the same
        decisions as one run each (:meth:`run_once`), in a few statements for all of them —
        then hand each portal its releases. A job rescued from us meanwhile is left alone.

        Raises:
            DatabaseUnavailable: nothing was done; the scheduler retries the jobs.
        """
        items = []
        for run in runs:
            action_id = run.job.args.get("action_id")
            portal_id = run.job.portal_id  # set on every throttle job
            override = await self.overrides(portal_id, action_id) if action_id is not None and portal_id is not None \
                else None
            items.append((run, run.job.args["queue_id"], override))
        started = trio.current_time()
        releases, _lost = await self.db.transaction(self.run_many, items, self.clock.now())
        self.metrics.worker_run_seconds.observe(trio.current_time() - started)
        self.metrics.worker_runs.inc(len(runs))
        by_portal: dict[int, list[Lease]] = {}
        for lease in releases:
            by_portal.setdefault(lease.portal_id, []).append(lease)
        for portal_id, leases in by_portal.items():
            await self.submit(portal_id, leases)

    def run_once(self, conn: Connection, run: JobRun, queue_id: str, now: dt.datetime,
                 override: ConfigRow | None = None) -> list[Lease]:
        """One tick of one queue inside one transaction (blocking; runs in a DB thread):
        :meth:`run_many` of one.

        Raises:
            LeaseLost: the job was rescued from us; the transaction rolls back.
        """
        releases, lost = self.run_many(conn, [(run, queue_id, override)], now)
        if lost:
            raise LeaseLost(run.job.id)
        return releases

    def run_many(self, conn: Connection, items: Sequence[tuple[JobRun, str, ConfigRow | None]],
                 now: dt.datetime) -> tuple[list[Lease], list[int]]:
        """One tick of each queue in ``items`` (``(run, queue_id, cached override)``, distinct
        queues) inside one transaction: the queue rows locked in id order, then each job's;
        ``(releases to hand to the portal senders after commit, ids of jobs rescued from us —
        left untouched)``.

        A cached override that is stale (its stamp differs from the database's) is read again
        here. Each queue's reads and its leases are one statement for all the queues
        (``db/executions.py``: ``pending_outlooks``, ``window_state_of``, ``take_pending_of``).
        """
        locked = queues_sql.lock_queues(conn, [queue_id for _, queue_id, _ in items], now)
        owned = jobs_sql.lock_owned_jobs(conn, [run.job.id for run, _, _ in items], items[0][0].owner)
        lost = [run.job.id for run, _, _ in items if run.job.id not in owned]
        ticks: list[_Tick] = []
        for run, queue_id, override in items:
            if run.job.id not in owned:
                continue
            state = locked.get(queue_id)
            if state is None:  # the queue is gone: nothing can wait in it
                jobs_sql.complete_job(conn, run.job.id, run.owner, now)
                continue
            queue = state.queue
            if queue.action_id is not None and state.override_stamp != (override.updated_at if override else None):
                # The cached override is older than the database's: an operator's change woke this
                # job before its NOTIFY reached this daemon's cache. Read it here, or the snooze
                # below would follow the old rate (an old "1 per day" would hold for a day).
                override = queues_sql.get_config(conn, queue.portal_id, queue.action_id)
            if state.lapsed:
                executions_sql.requeue_lapsed_releases(conn, queue_id, now, self.config.call_s)
            settings = effective_settings(queue, override)
            ticks.append(_Tick(run, state, Throttle.for_mode(settings.mode, settings.rate),
                               blocked_until(queue, settings.hours, now, state.portal),
                               state.releasing - state.lapsed))
        outlooks = executions_sql.pending_outlooks(conn, [t.queue_id for t in ticks], now)
        for t in ticks:
            t.eligible, t.next_due = outlooks[t.queue_id]
            portal = t.state.portal
            if t.blocked is not None and t.eligible and (portal is None or portal[0] != PortalStatus.ACTIVE):
                self._portal_unusable(t.state.queue.portal_id, portal, now)
        releases = self._release(conn, [t for t in ticks if t.blocked is None and t.eligible], now)
        done, snoozed = [], []
        for t in ticks:
            wake = self._finish(conn, t, now)
            if wake is None:
                done.append(t.run.job.id)
            else:
                snoozed.append((t.run.job.id, wake))
        owner = items[0][0].owner
        jobs_sql.complete_jobs(conn, done, owner, now)  # every queue's job in two statements
        jobs_sql.snooze_jobs(conn, snoozed, owner, now)
        return releases, lost

    def _release(self, conn: Connection, ticks: list[_Tick], now: dt.datetime) -> list[Lease]:
        """Lease what each queue's window allows (all queues in three statements)."""
        windowed = [t for t in ticks if t.state.queue.state != QueueState.DRAINING]
        window = executions_sql.window_state_of(
            conn, {t.queue_id: (now - t.throttle.longest_period, t.throttle.history) for t in windowed})
        allowed = {}
        for t in ticks:
            allowed[t.queue_id] = self.config.max_per_run
            if t in windowed:
                t.recent, t.in_flight = window[t.queue_id]  # one snapshot: nothing counted twice
                allowed[t.queue_id] = min(allowed[t.queue_id], t.throttle.slots_open(t.recent, t.in_flight, now))
            if not allowed[t.queue_id]:
                self.metrics.window_full.inc()
        lease_until = now + dt.timedelta(seconds=self.config.release_lease_s)
        owner = ticks[0].run.owner if ticks else None
        taken = executions_sql.take_pending_of(conn, allowed, now, lease_until, owner)
        for t in ticks:
            t.releases = taken.get(t.queue_id, [])
            t.in_flight += len(t.releases)
        after = executions_sql.pending_outlooks(conn, [t.queue_id for t in ticks if t.releases], now)
        for queue_id, (eligible, next_due) in after.items():
            t = next(t for t in ticks if t.queue_id == queue_id)
            t.eligible, t.next_due = eligible, next_due
        return [lease for t in ticks for lease in t.releases]

    def _finish(self, conn: Connection, t: _Tick, now: dt.datetime) -> dt.datetime | None:
        """When the queue's job runs next; ``None``: nothing waits or is in flight, the job is
        done (a drained queue is active again)."""
        queue = t.state.queue
        if t.next_due is None and t.in_flight == 0:  # nothing waits: the job is done
            if queue.state == QueueState.DRAINING:
                queues_sql.set_state(conn, t.queue_id, QueueState.ACTIVE, now)
            return None
        if queue.state == QueueState.DRAINING and t.eligible:
            return now  # an operator asked for the backlog now: no rate, go again at once
        return self._next_run(t.throttle, t.recent, t.in_flight, t.eligible, t.next_due, t.blocked, bool(t.releases), now)

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
        # sent now gives a lower bound on when the window opens; those just handed out are
        # counted when their acknowledgement is likely written (a run sooner would find the
        # window still full).
        acked = now + dt.timedelta(seconds=min(max(self.ack_latency(), 0.0), self.config.max_ack_wait_s)) \
            if sent_now else now
        lower = throttle.next_opening([*recent, *([acked] * in_flight)], 0, now) or now
        if sent_now or in_flight == 0:
            return lower
        return min(lower, poll)  # acks still pending: look again soon
