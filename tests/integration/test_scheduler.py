"""The job table and scheduler against real PostgreSQL, several schedulers racing."""

from __future__ import annotations

import collections
import datetime as dt
import itertools

import trio
import trio.lowlevel

from tests.conftest import EPOCH
from tests.support.outage import database_down
from tests.support.waiting import wait_until
from throttled.clock import TrioClock, WallClock
from throttled.db import jobs as jobs_sql
from throttled.jobs.outcomes import Complete, Retry, Snooze
from throttled.jobs.scheduler import Scheduler, SchedulerConfig


def _insert_many(db, n: int, now: dt.datetime, kind: str = "count") -> None:
    def insert(conn):
        for i in range(n):
            jobs_sql.insert_job(conn, kind, {"i": i}, now)
    db.transaction_sync(insert)


async def test_three_schedulers_run_every_job_exactly_once(db):
    clock = WallClock()
    _insert_many(db, 600, clock.now())
    runs = collections.Counter()

    async def handler(run):
        runs[run.job.args["i"]] += 1
        await trio.lowlevel.checkpoint()
        return Complete()

    config = SchedulerConfig(workers=8, poll_interval_s=0.2)
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            await nursery.start(Scheduler(db, clock, {"count": handler}, config).run)
        await wait_until(lambda: len(runs) == 600, timeout_s=20)
        await wait_until(lambda: db.transaction_sync(jobs_sql.count_by_state) == {"completed": 600}, timeout_s=20)
        nursery.cancel_scope.cancel()
    assert set(runs.values()) == {1}


async def test_unique_insert_returns_the_live_job(db):
    now = WallClock().now()
    results = []

    async def insert():
        results.append(await db.transaction(lambda c: jobs_sql.insert_job(c, "k", {}, now, unique_key="q1")))

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(insert)
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(inserted for _, inserted in results) == 1


async def test_snooze_spends_no_attempt_and_wakes_on_time(db, autojump_clock):
    clock = TrioClock(EPOCH)
    _insert_many(db, 1, clock.now(), kind="snoozer")
    seen: list[tuple[float, int]] = []

    async def handler(run):
        seen.append((trio.current_time(), run.job.attempt))
        if len(seen) < 4:
            return Snooze(clock.now() + dt.timedelta(seconds=30))
        return Complete()

    async with trio.open_nursery() as nursery:
        await nursery.start(Scheduler(db, clock, {"snoozer": handler}, SchedulerConfig(poll_interval_s=5)).run)
        await wait_until(lambda: len(seen) == 4, timeout_s=1000, step_s=10)
        nursery.cancel_scope.cancel()
    assert [attempt for _, attempt in seen] == [1, 1, 1, 1]
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(seen)]
    assert all(30 <= g < 30.5 for g in gaps), gaps


async def test_each_claim_reports_how_late_the_job_was_claimed(db, autojump_clock):
    # The job lag metric (throttled_job_lag_seconds): from falling due to being claimed.
    clock = TrioClock(EPOCH)
    now = clock.now()
    db.transaction_sync(lambda c: jobs_sql.insert_job(c, "late", {}, now, scheduled_at=now - dt.timedelta(seconds=5)))
    db.transaction_sync(lambda c: jobs_sql.insert_job(c, "later", {}, now, scheduled_at=now + dt.timedelta(seconds=30)))
    lags: dict[str, float] = {}

    async def handler(run):
        return Complete()

    scheduler = Scheduler(db, clock, {"late": handler, "later": handler}, SchedulerConfig(poll_interval_s=60))
    scheduler.on_claimed = lambda kind, lag_s: lags.__setitem__(kind, lag_s)
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        await wait_until(lambda: len(lags) == 2, timeout_s=100, step_s=1)
        nursery.cancel_scope.cancel()
    assert 5 <= lags["late"] < 5.5, lags  # due before the scheduler started
    assert 0 <= lags["later"] < 0.5, lags  # the scheduler slept until it fell due


async def test_failure_retries_with_backoff_then_discards(db, autojump_clock):
    clock = TrioClock(EPOCH)
    db.transaction_sync(lambda c: jobs_sql.insert_job(c, "flaky", {}, clock.now(), max_attempts=3))
    attempts: list[int] = []

    async def handler(run):
        attempts.append(run.job.attempt)
        return Retry("boom")

    async with trio.open_nursery() as nursery:
        await nursery.start(Scheduler(db, clock, {"flaky": handler}, SchedulerConfig(poll_interval_s=1)).run)
        await wait_until(
            lambda: db.transaction_sync(jobs_sql.count_by_state) == {"discarded": 1}, timeout_s=1000, step_s=1
        )
        nursery.cancel_scope.cancel()
    assert attempts == [1, 2, 3]


async def test_outcomes_are_written_in_batches_and_none_is_lost_at_shutdown(db):
    clock = WallClock()
    _insert_many(db, 320, clock.now())
    ran: set[int] = set()

    async def handler(run):
        ran.add(run.job.id)
        if run.job.args["i"] % 2:
            return Snooze(clock.now() + dt.timedelta(days=1))  # snoozes batch too
        return Complete()

    scheduler = Scheduler(db, clock, {"count": handler}, SchedulerConfig(workers=16, poll_interval_s=0.2))
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        await wait_until(lambda: len(ran) == 320, timeout_s=20)
        nursery.cancel_scope.cancel()  # outcomes still buffered are flushed on the way out

    assert db.transaction_sync(jobs_sql.count_by_state) == {"completed": 160, "scheduled": 160}
    # 16 slots finish together and share one transaction: far fewer writes than jobs.
    assert 1 <= scheduler.outcome_writes <= 320 // 4, scheduler.outcome_writes
    assert not scheduler.completing and not scheduler.running


async def test_an_outcome_held_up_by_an_outage_never_lands_on_the_jobs_next_run(db, empty_database):
    # Found by a fresh-user trial: the completer tried a stuck outcome again for a whole lease;
    # the lease lapsed meanwhile (no heartbeat renews it while the database is away), the job
    # was rescued and claimed again by the same scheduler, and the first run's late `Retry`
    # landed on the second run: a third run then started while the second was still running.
    clock = WallClock()
    db.transaction_sync(lambda conn: jobs_sql.insert_job(conn, "k", {}, clock.now()))
    started: list[int] = []  # attempts, in the order their runs started
    overlaps: list[tuple[int, list[int]]] = []  # (attempt, attempts still running when it started)
    running: list[int] = []
    outage_on = trio.Event()

    async def hold_the_database_down(task_status=trio.TASK_STATUS_IGNORED):
        with database_down(empty_database):
            outage_on.set()
            await trio.sleep(4.3)  # longer than the 4 s lease

    async def handler(run):
        attempt = run.job.attempt
        if running:
            overlaps.append((attempt, list(running)))
        started.append(attempt)
        running.append(attempt)
        try:
            if attempt == 1:
                nursery.start_soon(hold_the_database_down)
                await outage_on.wait()
                return Retry("its outcome meets the outage")
            await trio.sleep(2.5)  # long enough for a late write of run 1 to land during this run
            return Complete()
        finally:
            running.remove(attempt)

    config = SchedulerConfig(workers=4, poll_interval_s=0.1, lease_s=4.0, rescue_interval_s=0.1)
    async with trio.open_nursery() as nursery:
        await nursery.start(Scheduler(db, clock, {"k": handler}, config).run)
        await trio.sleep(4.5)  # the outage: the test reads nothing while it lasts
        await wait_until(lambda: db.transaction_sync(jobs_sql.count_by_state) == {"completed": 1}, timeout_s=20,
                         what="the job completed")
        await trio.sleep(1.0)  # a run started by a stale outcome would show up here
        nursery.cancel_scope.cancel()
    errors = db.transaction_sync(lambda conn: conn.exec_driver_sql("SELECT errors FROM jobs").scalar_one())
    assert not overlaps, f"runs overlapped: {overlaps}; attempts started {started}; errors {errors}"
    assert started == [1, 2], (started, errors)  # the first run, and one run after the rescue
