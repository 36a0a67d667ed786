"""The job scheduler: claims due jobs, runs their handlers, applies outcomes, keeps leases.

One scheduler per daemon; several daemons share one job table. It claims in batches up to
its free worker slots (``FOR UPDATE SKIP LOCKED``; with no slot free it asks the database
nothing), wakes on NOTIFY or when the next scheduled job falls due, and polls every
``poll_interval_s`` regardless, so a lost notification only delays work. Claims that leave
slots free are at least ``claim_gap_s`` apart, so jobs falling due one by one run in
batches. Outcomes go to a completer (River's): buffered and written together, one
transaction per batch — a batch grows while the previous one commits — with the slot freed
at once and the lease kept by the heartbeat until written; a crash before the write runs the
job again (at least once, as before). A heartbeat renews the leases; every
``rescue_interval_s`` it rescues jobs whose lease lapsed (their daemon died) — safe from
every daemon at once, so no leader is needed.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import structlog
import trio
from sqlalchemy.engine import Connection

from throttled.clock import Clock
from throttled.db import jobs as jobs_sql
from throttled.db.engine import Database, DatabaseUnavailable, through_outage
from throttled.jobs.backoff import backoff_seconds
from throttled.jobs.notifier import Notifier
from throttled.jobs.outcomes import (
    Applied,
    Cancel,
    Complete,
    Discard,
    LeaseLost,
    Outcome,
    Retry,
    Snooze,
)

log = structlog.get_logger("throttled.jobs")

Handler = Callable[["JobRun"], Awaitable[Outcome]]


@runtime_checkable
class BatchHandler(Protocol):
    """A handler that can also run many claimed jobs of its kind at once (the throttle
    worker: several queues' runs in one transaction). It applies the outcomes itself."""

    async def __call__(self, run: JobRun) -> Outcome: ...

    async def run_batch(self, runs: Sequence[JobRun]) -> None: ...


def new_owner_id() -> str:
    """``host:pid:random`` — a restarted daemon is a new owner, so it never mistakes an
    old lease for its own."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class JobRun:
    """A claimed job plus what its handler needs to apply outcomes itself."""

    job: jobs_sql.Job
    owner: str


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """Tuning; all durations in seconds."""

    workers: int = 32
    batch_size: int = 50  # most jobs of a batch handler's kind run together (one transaction)
    poll_interval_s: float = 1.0
    claim_gap_s: float = 0.05  # least time between claims that did not fill every slot
    lease_s: float = 30.0
    rescue_interval_s: float = 5.0


class Scheduler:
    """Runs the handlers registered for each job ``kind``.

    Args:
        db: the database.
        clock: the daemon's clock (every "now").
        handlers: ``{kind: async handler(JobRun) -> Outcome}``.
        config: slots, poll interval, lease length.
        owner: this scheduler's owner id (default: :func:`new_owner_id`).
        notifier: the daemon's shared LISTEN connection, started by the daemon; without one
            the scheduler runs a notifier of its own.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        handlers: dict[str, Handler],
        config: SchedulerConfig = SchedulerConfig(),
        owner: str | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.handlers = handlers
        # Decided once: an isinstance check against a runtime-checkable Protocol walks the
        # protocol's members each time, and per claimed job it was 16 % of the event loop
        # (bench/jobs.py, py-spy).
        self._batch_handlers = {kind: h for kind, h in handlers.items() if isinstance(h, BatchHandler)}
        self.config = config
        self.owner = owner or new_owner_id()
        self.running: dict[int, jobs_sql.Job] = {}
        self.completing: dict[int, jobs_sql.Job] = {}  # ran; outcome waiting for the completer
        self._leased_at: dict[int, float] = {}  # job id -> trio time its lease was last set (claim, heartbeat)
        self.outcome_writes = 0  # completer transactions (each writes a batch of outcomes)
        self.claims = 0  # claim transactions
        self.batches = 0  # batch handler runs (each runs several jobs in one transaction)
        self._outcomes: list[tuple[jobs_sql.Job, Outcome]] = []
        self._outcome_ready = trio.Event()
        self.progress = 0  # claims + outcomes applied; a watchdog can watch it move
        self.loops = 0  # fetch-loop turns, idle ones included: the watchdog's sign of life
        self.rescued = 0
        self.on_rescue: Callable[[int], None] = lambda n: None
        # (kind, seconds from falling due to being claimed) per claimed job: the queue's lag.
        self.on_claimed: Callable[[str, float], None] = lambda kind, lag_s: None
        self._claiming = True
        self._wake = trio.Event()
        self._own_notifier = notifier is None
        self.notifier = notifier or Notifier(db.url)
        self.notifier.subscribe(jobs_sql.NOTIFY_CHANNEL, lambda _payload: self.wake())

    def wake(self) -> None:
        """Look for due jobs now (NOTIFY arrived, a slot freed, a job was enqueued)."""
        self._wake.set()

    def stop_claiming(self) -> None:
        """Graceful shutdown, step one: claim nothing more; running jobs go on."""
        self._claiming = False
        self.wake()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` seconds for running jobs to finish; True if they did."""
        with trio.move_on_after(timeout_s):
            while self.running or self.completing:
                await trio.sleep(0.02)
        return not self.running and not self.completing

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled. On exit, running jobs are handed back (available now)."""
        try:
            async with trio.open_nursery() as nursery:
                if self._own_notifier:
                    await nursery.start(self.notifier.run)
                nursery.start_soon(self._heartbeat)
                nursery.start_soon(self._rescue_loop)
                nursery.start_soon(self._completer)
                task_status.started()
                await self._fetch_loop(nursery)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._flush_outcomes()  # what ran is recorded, not run again
            with trio.CancelScope(shield=True):
                await self._hand_back_owned()

    # -- claiming ------------------------------------------------------------------

    async def _fetch_loop(self, nursery: trio.Nursery) -> None:
        while True:
            self._wake = trio.Event()
            self.loops += 1
            wait_s = self.config.poll_interval_s
            next_claim = trio.current_time()
            try:
                free = self.config.workers - len(self.running) if self._claiming else 0
                if free <= 0:  # nothing to claim into: no transaction, wait for a slot (or a stop)
                    await self._wake.wait()
                    continue
                now = self.clock.now()
                next_claim += self.config.claim_gap_s
                leased_at = trio.current_time()
                jobs, next_due = await self.db.transaction(self._claim, free, now)
                self.claims += 1
                self._leased_at.update((job.id, leased_at) for job in jobs)
                self._observe_lag(jobs)
                self._start(nursery, jobs)
                if jobs:
                    self.progress += 1
                if len(jobs) == free and free > 0:
                    continue  # there may be more due right now
                if next_due is not None and free > len(jobs):
                    wait_s = min(wait_s, max(0.0, (next_due - self.clock.now()).total_seconds()))
            except DatabaseUnavailable as exc:
                log.warning("scheduler.db_unavailable", error=str(exc))
            with trio.move_on_after(wait_s):
                await self._wake.wait()
            # At most one claim per gap unless the last one filled every slot: jobs falling due
            # one by one (10,000 queues) then run as a batch, one transaction for many.
            await trio.sleep_until(next_claim)

    def _claim(self, conn: Connection, free: int, now: dt.datetime) -> tuple[list[jobs_sql.Job], dt.datetime | None]:
        jobs: list[jobs_sql.Job] = []
        if free > 0:
            lease_until = now + dt.timedelta(seconds=self.config.lease_s)
            jobs = jobs_sql.claim_due_jobs(conn, self.owner, free, now, lease_until)
        if free and len(jobs) == free:
            return jobs, None  # the loop claims again at once: when the next job is due does not matter
        return jobs, jobs_sql.next_due_at(conn)

    def _observe_lag(self, jobs: list[jobs_sql.Job]) -> None:
        if not jobs:
            return
        claimed_at = self.clock.now()
        for job in jobs:
            if job.scheduled_at is not None:
                self.on_claimed(job.kind, max(0.0, (claimed_at - job.scheduled_at).total_seconds()))

    # -- running -------------------------------------------------------------------

    def _start(self, nursery: trio.Nursery, jobs: list[jobs_sql.Job]) -> None:
        """Run each claimed job; those of a batch handler's kind together, ``batch_size`` at a time."""
        batches: dict[str, list[jobs_sql.Job]] = {}
        for job in jobs:
            self.running[job.id] = job
            if job.kind in self._batch_handlers:
                batches.setdefault(job.kind, []).append(job)
            else:
                nursery.start_soon(self._execute, job)
        size = max(1, self.config.batch_size)
        for kind, group in batches.items():
            for start in range(0, len(group), size):
                nursery.start_soon(self._execute_batch, kind, group[start:start + size])

    async def _execute_batch(self, kind: str, jobs: list[jobs_sql.Job]) -> None:
        handler = self._batch_handlers[kind]
        self.batches += 1
        try:
            await handler.run_batch([JobRun(job, self.owner) for job in jobs])
        except Exception as exc:  # an outage or a bug: each job is retried later, as one alone would be
            log.warning("job.batch_failed", kind=kind, jobs=len(jobs), error=repr(exc)[:300])
            for job in jobs:
                self._buffer(job, Retry(f"{type(exc).__name__}: {exc}"[:1000]))
        finally:
            for job in jobs:
                self.running.pop(job.id, None)
            self.progress += 1
            self.wake()

    async def _execute(self, job: jobs_sql.Job) -> None:
        try:
            outcome = await self._run_handler(job)
            if outcome is not None and not isinstance(outcome, Applied):
                self._buffer(job, outcome)
        finally:
            self.running.pop(job.id, None)
            self.progress += 1
            self.wake()

    async def _run_handler(self, job: jobs_sql.Job) -> Outcome | None:
        handler = self.handlers.get(job.kind)
        if handler is None:
            return Discard(f"no handler for kind {job.kind!r}")
        try:
            return await handler(JobRun(job, self.owner))
        except LeaseLost:
            log.warning("job.lease_lost", job_id=job.id, kind=job.kind)
            return None
        except Exception as exc:  # a handler bug or outage must not kill the scheduler
            log.warning("job.failed", job_id=job.id, kind=job.kind, attempt=job.attempt, error=repr(exc)[:300])
            return Retry(f"{type(exc).__name__}: {exc}"[:1000])

    # -- the completer -------------------------------------------------------------

    def _buffer(self, job: jobs_sql.Job, outcome: Outcome) -> None:
        """Hand ``outcome`` to the completer; the job's lease is kept until it is written."""
        self.completing[job.id] = job
        self._outcomes.append((job, outcome))
        self._outcome_ready.set()

    async def _completer(self) -> None:
        while True:
            await self._outcome_ready.wait()
            await self._flush_outcomes()

    async def _flush_outcomes(self) -> None:
        """Write every buffered outcome in one transaction, tried again through an outage
        only while the batch's leases surely last (no heartbeat renews them while the
        database is away): a lease that lapsed may be rescued and the job claimed again by
        this very daemon, and a late write would then land on that new run."""
        self._outcome_ready = trio.Event()
        batch, self._outcomes = self._outcomes, []
        if not batch:
            return
        now = trio.current_time()
        lease_ends = min(self._leased_at.get(job.id, now - self.config.lease_s) for job, _ in batch) + self.config.lease_s
        # A try may start up to one pause (2 s) after the bound and take a moment itself.
        give_up_s = max(0.0, lease_ends - now - 2.0 - self.config.lease_s / 10)
        written = False
        try:
            async for attempt in through_outage(give_up_s):
                with attempt:
                    await self.db.transaction(self._write_outcomes, batch, self.clock.now())
            written = True
            self.outcome_writes += 1
        except DatabaseUnavailable:
            pass
        finally:
            if not written:  # the database stayed away, or a stop cut the tries short
                # Could not record them: the leases will lapse and the jobs run again.
                log.warning("job.outcomes_lost", jobs=len(batch), job_ids=[job.id for job, _ in batch][:20])
            for job, _ in batch:
                self.completing.pop(job.id, None)
            self.progress += 1

    def _write_outcomes(self, conn: Connection, batch: list[tuple[jobs_sql.Job, Outcome]], now: dt.datetime) -> None:
        done = [job.id for job, outcome in batch if isinstance(outcome, Complete)]
        snoozed = [(job.id, outcome.until) for job, outcome in batch if isinstance(outcome, Snooze)]
        jobs_sql.complete_jobs(conn, done, self.owner, now)
        jobs_sql.snooze_jobs(conn, snoozed, self.owner, now)
        for job, outcome in batch:
            if not isinstance(outcome, (Complete, Snooze)):
                self._apply_sync(conn, job, outcome, now)

    def _apply_sync(self, conn: Connection, job: jobs_sql.Job, outcome: Outcome, now: dt.datetime) -> None:
        if isinstance(outcome, Complete):
            jobs_sql.complete_job(conn, job.id, self.owner, now)
        elif isinstance(outcome, Snooze):
            jobs_sql.snooze_job(conn, job.id, self.owner, outcome.until, now)
        elif isinstance(outcome, Retry):
            retry_at = now + dt.timedelta(seconds=backoff_seconds(job.attempt))
            jobs_sql.retry_job(conn, job.id, self.owner, outcome.error, now, retry_at)
        elif isinstance(outcome, Discard):
            jobs_sql.discard_job(conn, job.id, self.owner, now, outcome.reason)
        elif isinstance(outcome, Cancel):
            jobs_sql.cancel_job(conn, job.id, self.owner, now, outcome.reason)
        else:
            raise TypeError(f"not an outcome: {outcome!r}")

    # -- leases --------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        while True:
            await trio.sleep(self.config.lease_s / 3)
            ids = [*self.running, *self.completing]
            if not ids:
                continue
            until = self.clock.now() + dt.timedelta(seconds=self.config.lease_s)
            renewed_at = trio.current_time()
            try:
                await self.db.transaction(jobs_sql.renew_leases, self.owner, ids, until)
                self._leased_at.update(dict.fromkeys(ids, renewed_at))
                self._leased_at = {i: t for i, t in self._leased_at.items() if i in self.running or i in self.completing}
            except DatabaseUnavailable as exc:
                log.warning("scheduler.heartbeat_failed", error=str(exc))

    async def _rescue_loop(self) -> None:
        while True:
            try:
                rescued, discarded = await self.db.transaction(jobs_sql.rescue_expired_leases, self.clock.now())
                if rescued or discarded:
                    log.warning("jobs.rescued", rescued=rescued, discarded=discarded)
                    self.rescued += rescued
                    self.on_rescue(rescued + discarded)
                    self.wake()
            except DatabaseUnavailable as exc:
                log.warning("scheduler.rescue_failed", error=str(exc))
            await trio.sleep(self.config.rescue_interval_s)

    async def _hand_back_owned(self) -> None:
        try:
            released = await self.db.transaction(jobs_sql.hand_back_owned_jobs, self.owner, self.clock.now())
            if released:
                log.info("jobs.handed_back_on_shutdown", count=released)
        except DatabaseUnavailable:
            pass  # leases will lapse and be rescued
