"""Invariant 3 under contention: ingest racing the worker's "queue is empty, finish" tick.

Each round starts from a queue whose executions are all released and whose one live job is
claimed by the worker. Then, in threads with their own transactions on the real database,
the worker's tick (``ThrottleWorker.run_once``, which completes the job when it finds the
queue empty) races one or two ingests (``store_enrollments``) of new executions. Random
start offsets and random pauses *inside* each transaction (while its locks are held) make
the rounds interleave differently: ingest wholly before the tick, wholly after it, or
blocked on the queue row in the middle. After every round the queue must hold exactly one
live job, and no queue with pending work may be without one.
"""

from __future__ import annotations

import collections
import datetime as dt
import random
import threading
import time

import pytest
import sqlalchemy as sa

from tests.conftest import EPOCH, install_portal
from throttled.clock import WallClock
from throttled.db import executions as executions_sql
from throttled.db import jobs as jobs_sql
from throttled.db import queues as queues_sql
from throttled.db import tables
from throttled.ingest.payload import parse_enrollment
from throttled.ingest.store import store_enrollments
from throttled.jobs.scheduler import JobRun
from throttled.testing import Step, enrollment_body
from throttled.throttle.block_length import BlockLimits
from throttled.throttle.job import throttle_job_key
from throttled.throttle.worker import ThrottleWorker

ROUNDS = 400
PORTAL = 5150
OWNER = "race-test-worker"
STEP = Step(workflow_id=300, action_id=1, limit=1_000_000, period=1, unit="seconds")  # the rate never binds
QUEUE = STEP.queue_id(PORTAL)
BLOCK_S = BlockLimits(dt.timedelta(days=7), dt.timedelta(days=30))


@pytest.fixture(autouse=True)
def portal_installed(db):
    """The worker holds queues of portals it cannot call: install this one."""
    install_portal(db, PORTAL)


async def _never_called(portal_id, releases) -> None:
    raise AssertionError("run_once is driven directly; nothing is submitted")


def _enrollment(callback_id: str):
    return parse_enrollment(enrollment_body(callback_id, PORTAL, STEP))


def _prepare(conn, now: dt.datetime) -> JobRun:
    """Release everything in the queue and claim its live job, as the scheduler would."""
    live = conn.execute(
        sa.select(tables.action_executions.c.callback_id).where(
            tables.action_executions.c.queue_id == QUEUE,
            tables.action_executions.c.state.in_(("pending", "releasing")),
        )
    ).scalars().all()
    executions_sql.mark_released(conn, live, now)
    claimed = jobs_sql.claim_due_jobs(conn, OWNER, 10, now, now + dt.timedelta(seconds=30))
    assert len(claimed) == 1 and claimed[0].unique_key == throttle_job_key(QUEUE), claimed
    return JobRun(claimed[0], OWNER)


def _live_jobs(conn) -> list[int]:
    jobs = tables.jobs
    return conn.execute(
        sa.select(jobs.c.id).where(jobs.c.unique_key == throttle_job_key(QUEUE), jobs.c.state.in_(jobs_sql.LIVE_STATES))
    ).scalars().all()


def _round_state(conn, now: dt.datetime, job_id: int):
    """Queues left without a live job, the queue's live jobs, and the state of the tick's job."""
    return (
        queues_sql.queues_without_live_job(conn, "throttle:", now),
        _live_jobs(conn),
        conn.execute(sa.select(tables.jobs.c.state).where(tables.jobs.c.id == job_id)).scalar_one(),
    )


def _race(db, worker: ThrottleWorker, run: JobRun, batches: list[list[str]], now: dt.datetime, rng: random.Random) -> None:
    """Run the worker's tick and one ingest per batch at once, each in its own transaction."""
    barrier = threading.Barrier(1 + len(batches))
    errors: list[BaseException] = []

    def pause() -> None:
        time.sleep(rng.choice((0.0, 0.0, rng.uniform(0, 0.003))))

    def tick(conn):
        releases = worker.run_once(conn, run, QUEUE, now)
        pause()  # commit later, still holding the queue row lock
        return releases

    def ingest(conn, ids: list[str]):
        store_enrollments(conn, [_enrollment(cid) for cid in ids], now, BLOCK_S)
        pause()

    def in_thread(fn, *args) -> None:
        try:
            barrier.wait()
            pause()
            db.transaction_sync(fn, *args)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=in_thread, args=(tick,))]
    threads += [threading.Thread(target=in_thread, args=(ingest, ids)) for ids in batches]
    rng.shuffle(threads)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors


def test_ingest_racing_the_finishing_tick_never_orphans_the_queue(db):
    rng = random.Random(20260302)
    worker = ThrottleWorker(db, WallClock(), _never_called)
    db.transaction_sync(store_enrollments, [_enrollment("seed")], EPOCH, BLOCK_S)
    outcomes: collections.Counter[str] = collections.Counter()
    stored = 1
    for n in range(ROUNDS):
        now = EPOCH + dt.timedelta(minutes=n + 1)  # past any snooze of the round before
        run = db.transaction_sync(_prepare, now)
        batches = [[f"r{n}-{k}"] for k in range(rng.choice((1, 1, 2)))]
        _race(db, worker, run, batches, now, rng)
        stored += len(batches)

        orphans, live, tick_job_state = db.transaction_sync(_round_state, now, run.job.id)
        assert orphans == [], f"round {n}: queue left without a live job"
        assert len(live) == 1, f"round {n}: live jobs {live}"
        # completed: the tick found the queue empty, so ingest came after and made a new job;
        # otherwise the tick saw the new execution(s) and kept its job alive.
        outcomes["finished, new job" if tick_job_state == "completed" else "kept alive"] += 1
        if tick_job_state == "completed":
            assert live != [run.job.id]

    counts = db.transaction_sync(executions_sql.execution_counts, [QUEUE])[QUEUE]
    assert sum(counts.values()) == stored  # nothing lost, nothing doubled
    # The random schedule really exercised both orders, many times each.
    assert outcomes["finished, new job"] >= 40 and outcomes["kept alive"] >= 40, outcomes
