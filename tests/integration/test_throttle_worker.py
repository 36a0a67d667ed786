"""The throttle worker under a real scheduler and real PostgreSQL, in virtual time.

No HTTP: enrollments are stored with ``store_enrollments`` (what the batcher commits), and the
worker's ``submit`` goes to :class:`PortalSide`, a few lines standing in for HubSpot's
acknowledgement — it records what was released and when, and marks it released at that
moment, as the portal sender does after a 204. The worker, scheduler, job table and SQL are
the real ones. Time is the suite's ``autojump_clock`` (``tests/support/clocks.py``) read through
``TrioClock``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Sequence

import pytest
import sqlalchemy as sa
import trio

from tests.conftest import EPOCH, install_portal
from tests.support.portal_side import PortalSide
from tests.support.waiting import wait_until
from throttled.clock import TrioClock
from throttled.db import executions as executions_sql
from throttled.db import nodes as nodes_sql
from throttled.db import queues as queues_sql
from throttled.db import tables
from throttled.db.executions import Lease
from throttled.ingest.payload import parse_enrollment
from throttled.ingest.store import store_enrollments
from throttled.jobs.scheduler import Scheduler, SchedulerConfig
from throttled.testing import Step, enrollment_body
from throttled.throttle.block_length import BlockLimits
from throttled.throttle.job import THROTTLE_JOB_KIND, throttle_job_key
from throttled.throttle.rate import max_in_window
from throttled.throttle.worker import ThrottleWorker, WorkerConfig

PORTAL = 31337
BLOCK_S = BlockLimits(dt.timedelta(days=7), dt.timedelta(days=30))
FIVE_PER_5S = Step(workflow_id=100, action_id=1, limit=5, period=5, unit="seconds")


@pytest.fixture(autouse=True)
def portal_installed(db):
    """The worker holds queues of portals it cannot call: install this one."""
    install_portal(db, PORTAL)


def _ids(step: Step, start: int, n: int) -> list[str]:
    return [f"ap-{PORTAL}-{step.workflow_id}-{step.action_id}-{i}" for i in range(start, start + n)]


def _store(db, step: Step, ids: list[str], now: dt.datetime) -> int:
    enrollments = [parse_enrollment(enrollment_body(cid, PORTAL, step, object_id=n)) for n, cid in enumerate(ids)]
    return len(db.transaction_sync(store_enrollments, enrollments, now, BLOCK_S).new)


def _jobs_of(db, step: Step) -> list[tuple[int, str]]:
    """``(id, state)`` of every throttle job the step's queue ever had, oldest first."""
    key = throttle_job_key(step.queue_id(PORTAL))
    query = sa.select(tables.jobs.c.id, tables.jobs.c.state).where(tables.jobs.c.unique_key == key).order_by(tables.jobs.c.id)
    return db.transaction_sync(lambda conn: [tuple(r) for r in conn.execute(query)])


def _orphans(db) -> list[tuple[str, int, int | None]]:
    return db.transaction_sync(queues_sql.queues_without_live_job, "throttle:", EPOCH)


async def _start(nursery, db, clock, portal: PortalSide) -> None:
    worker = ThrottleWorker(db, clock, portal.submit)
    scheduler = Scheduler(db, clock, {THROTTLE_JOB_KIND: worker}, SchedulerConfig(workers=8, poll_interval_s=1.0))
    await nursery.start(scheduler.run)


async def test_five_per_five_seconds_releases_exactly_five_every_five_seconds(db, autojump_clock):
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock, check_orphans=True)
    ids = _ids(FIVE_PER_5S, 0, 30)
    assert _store(db, FIVE_PER_5S, ids, clock.now()) == 30
    async with trio.open_nursery() as nursery:
        await _start(nursery, db, clock, portal)
        await wait_until(lambda: len(portal.released()) == 30, timeout_s=2000, step_s=1)
        await wait_until(lambda: [state for _, state in _jobs_of(db, FIVE_PER_5S)] == ["completed"], timeout_s=2000, step_s=1)
        nursery.cancel_scope.cancel()

    assert [len(batch) for _, batch in portal.batches] == [5] * 6  # never 4, never 6
    times = [t for t, _ in portal.batches]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(5.0 <= g < 6.0 for g in gaps), gaps
    assert max_in_window(portal.times, dt.timedelta(seconds=5)) == 5
    assert portal.released() == ids  # arrival order
    assert portal.orphans_seen == [] and _orphans(db) == []


async def test_job_finishes_when_empty_and_a_later_enrollment_starts_a_new_one(db, autojump_clock):
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock, check_orphans=True)
    first, later = _ids(FIVE_PER_5S, 0, 7), _ids(FIVE_PER_5S, 7, 3)
    _store(db, FIVE_PER_5S, first, clock.now())
    async with trio.open_nursery() as nursery:
        await _start(nursery, db, clock, portal)
        await wait_until(lambda: [s for _, s in _jobs_of(db, FIVE_PER_5S)] == ["completed"], timeout_s=2000, step_s=1)
        assert portal.released() == first
        assert _orphans(db) == []

        await trio.sleep(60)  # the queue sits empty, with no live job, for a minute
        assert [s for _, s in _jobs_of(db, FIVE_PER_5S)] == ["completed"]
        _store(db, FIVE_PER_5S, later, clock.now())
        jobs = _jobs_of(db, FIVE_PER_5S)
        assert len(jobs) == 2 and jobs[1][1] in ("available", "executing", "scheduled")
        await wait_until(lambda: [s for _, s in _jobs_of(db, FIVE_PER_5S)] == ["completed", "completed"],
                         timeout_s=2000, step_s=1)
        nursery.cancel_scope.cancel()

    assert portal.released() == first + later
    assert [len(batch) for _, batch in portal.batches] == [5, 2, 3]  # the window was long clear
    assert portal.orphans_seen == [] and _orphans(db) == []


async def test_enrollments_arriving_while_releasing_keep_their_place(db, autojump_clock):
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock, check_orphans=True)
    ids = _ids(FIVE_PER_5S, 0, 20)
    _store(db, FIVE_PER_5S, ids[:8], clock.now())
    async with trio.open_nursery() as nursery:
        await _start(nursery, db, clock, portal)
        for start in (8, 12, 16):  # more arrive every 3 s while the queue drains
            await trio.sleep(3)
            _store(db, FIVE_PER_5S, ids[start : start + 4], clock.now())
        await wait_until(lambda: len(portal.released()) == 20, timeout_s=2000, step_s=1)
        await wait_until(lambda: [s for _, s in _jobs_of(db, FIVE_PER_5S)] == ["completed"], timeout_s=2000, step_s=1)
        nursery.cancel_scope.cancel()

    assert portal.released() == ids
    assert [len(batch) for _, batch in portal.batches] == [5, 5, 5, 5]
    assert max_in_window(portal.times, dt.timedelta(seconds=5)) == 5
    assert portal.orphans_seen == [] and _orphans(db) == []


async def test_two_queues_each_keep_their_own_rate(db, autojump_clock):
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock, check_orphans=True)
    fast = Step(workflow_id=200, action_id=1, limit=3, period=2, unit="seconds")
    slow = Step(workflow_id=200, action_id=2, limit=2, period=1, unit="minutes")
    _store(db, fast, _ids(fast, 0, 12), clock.now())
    _store(db, slow, _ids(slow, 0, 6), clock.now())
    async with trio.open_nursery() as nursery:
        await _start(nursery, db, clock, portal)
        await wait_until(lambda: len(portal.released()) == 18, timeout_s=2000, step_s=5)
        nursery.cancel_scope.cancel()

    acks = dict(zip(portal.ids, portal.times, strict=True))
    fast_acks = [acks[cid] for cid in portal.released(fast)]
    slow_acks = [acks[cid] for cid in portal.released(slow)]
    assert portal.released(fast) == _ids(fast, 0, 12) and portal.released(slow) == _ids(slow, 0, 6)
    assert max_in_window(fast_acks, dt.timedelta(seconds=2)) == 3
    assert max_in_window(slow_acks, dt.timedelta(minutes=1)) == 2
    # The slow queue's two-minute wait did not hold the fast one back: done in about 6 s.
    assert (max(fast_acks) - min(fast_acks)).total_seconds() < 7.5
    assert (max(slow_acks) - min(slow_acks)).total_seconds() >= 120
    assert portal.orphans_seen == [] and _orphans(db) == []


class CrashOnce(PortalSide):
    """HubSpot completes the first batch, but the daemon dies before recording it (no
    acknowledgement stored); later batches are acknowledged as usual, and HubSpot answers
    "already completed" for a callback it completed before. ``completed_at`` holds the time
    HubSpot really completed each callback — what the customer's window is about."""

    def __init__(self, db, clock: TrioClock) -> None:
        super().__init__(db, clock)
        self.completed_at: dict[str, dt.datetime] = {}

    async def submit(self, portal_id: int, releases: Sequence[Lease]) -> None:
        now = self.clock.now()
        for release in releases:
            self.completed_at.setdefault(release.callback_id, now)
        if len(self.completed_at) == len(releases):
            # The first batch: the portal sender stamps it as on the wire (as before every
            # call), HubSpot completes it, and the daemon dies before it hears back.
            leases = {r.callback_id: r.lease_until for r in releases}
            assert len(await self.db.transaction(executions_sql.start_sending, leases, now, now, now)) == len(releases)
            return
        await super().submit(portal_id, releases)


async def test_a_send_lost_in_a_crash_still_counts_in_its_window(db, autojump_clock):
    # Found by the reliability suite's reasoning: when the lease of a send whose answer was lost
    # lapses, the executions go back in line; if they stopped counting in the window, a later
    # higher-priority enrollment would be released on top of what HubSpot already completed.
    clock = TrioClock(EPOCH)
    step = Step(workflow_id=300, action_id=1, limit=5, period=60, unit="seconds")
    portal = CrashOnce(db, clock)
    _store(db, step, _ids(step, 0, 5), clock.now())
    urgent = json.loads(enrollment_body(f"ap-{PORTAL}-300-1-urgent", PORTAL, step))
    urgent["inputFields"]["priority"] = "9"
    worker = ThrottleWorker(db, clock, portal.submit, WorkerConfig(release_lease_s=10))
    scheduler = Scheduler(db, clock, {THROTTLE_JOB_KIND: worker}, SchedulerConfig(workers=4, poll_interval_s=1.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        await wait_until(lambda: len(portal.completed_at) == 5, timeout_s=2000, step_s=1)
        await trio.sleep(2)
        db.transaction_sync(store_enrollments, [parse_enrollment(json.dumps(urgent).encode())], clock.now(), BLOCK_S)
        await wait_until(lambda: len(portal.completed_at) == 6, timeout_s=2000, step_s=5)
        await wait_until(lambda: [s for _, s in _jobs_of(db, step)] == ["completed"], timeout_s=2000, step_s=5)
        nursery.cancel_scope.cancel()

    real = sorted(portal.completed_at.values())
    assert max_in_window(real, dt.timedelta(seconds=60)) == 5
    assert (real[5] - real[0]).total_seconds() >= 60  # the urgent one waited for the window


def _leased_to_a_dead_daemon(db, step: Step, ids: list[str], now: dt.datetime, sent: bool) -> None:
    """``ids`` were taken by daemon "node-x" (a 2-minute lease), which then died (its ``nodes``
    row lapsed); ``sent``: it had started a call on them."""
    lease = now + dt.timedelta(minutes=2)

    def take(conn):
        taken = executions_sql.take_pending(conn, step.queue_id(PORTAL), len(ids), now, lease, "node-x")
        assert [r.callback_id for r in taken] == ids
        nodes_sql.heartbeat(conn, "node-x", now - dt.timedelta(seconds=20), now - dt.timedelta(seconds=1))
        if sent:
            executions_sql.start_sending(conn, dict.fromkeys(ids, lease), now, now, lease)
    db.transaction_sync(take)


@pytest.mark.parametrize("sent", [False, True], ids=["never-sent", "on-the-wire"])
async def test_a_dead_daemons_releases_come_back_without_waiting_for_their_lease(db, autojump_clock, sent):
    # Field faults, item 6: a restarted daemon waited the whole release lease (120 s) before
    # releasing anything of the queue, even what the dead daemon never put on the wire.
    clock = TrioClock(EPOCH)
    step = Step(workflow_id=400, action_id=1, limit=5, period=60, unit="seconds")
    ids = _ids(step, 0, 5)
    _store(db, step, ids, clock.now())
    _leased_to_a_dead_daemon(db, step, ids, clock.now(), sent)
    _store(db, step, _ids(step, 5, 1), clock.now())  # one more, behind them
    portal = PortalSide(db, clock)
    async with trio.open_nursery() as nursery:
        await _start(nursery, db, clock, portal)
        await wait_until(lambda: len(portal.released()) == 6, timeout_s=2000, step_s=1)
        nursery.cancel_scope.cancel()
    back, sixth = portal.times[0] - EPOCH, portal.times[5] - EPOCH
    assert portal.released()[:5] == ids
    if not sent:  # never on the wire: back at once (before: after the 120 s lease, then a window)
        assert back < dt.timedelta(seconds=5), back
        assert dt.timedelta(seconds=60) <= sixth < dt.timedelta(seconds=65), sixth  # 5 per 60 s
    else:  # HubSpot may have completed them by the end of that call (10 s): the window counts
        # them until then + 60 s, and no longer (before: lease end 120 s + 60 s = 180 s)
        assert dt.timedelta(seconds=70) <= back < dt.timedelta(seconds=75), back
        assert sixth >= back + dt.timedelta(seconds=60), sixth


async def test_one_batch_runs_many_queues_each_by_its_own_state(db, autojump_clock):
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock)
    busy, paused, idle = (Step(workflow_id=700 + n, action_id=1, limit=2, period=1, unit="minutes") for n in range(3))
    _store(db, busy, _ids(busy, 0, 5), EPOCH)
    _store(db, paused, _ids(paused, 0, 3), EPOCH)
    _store(db, idle, _ids(idle, 0, 1), EPOCH)
    db.transaction_sync(queues_sql.set_state, paused.queue_id(PORTAL), "paused", EPOCH)
    db.transaction_sync(lambda conn: executions_sql.cancel_pending(conn, [idle.queue_id(PORTAL)], "gone", EPOCH))
    worker = ThrottleWorker(db, clock, portal.submit)
    scheduler = Scheduler(db, clock, {THROTTLE_JOB_KIND: worker}, SchedulerConfig(workers=8, poll_interval_s=3600))
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        await portal.wait_for(2, timeout_s=30)
        await wait_until(lambda: len(_jobs_of(db, idle)) == 1 and _jobs_of(db, idle)[0][1] == "completed", timeout_s=30)
        nursery.cancel_scope.cancel()

    # The three jobs were due together: one batch, one transaction, three different outcomes.
    assert len(portal.batches) == 1 and sorted(portal.ids) == sorted(_ids(busy, 0, 2))  # the window's 2, no more
    states = {s.workflow_id: [state for _, state in _jobs_of(db, s)] for s in (busy, paused, idle)}
    assert states == {700: ["scheduled"], 701: ["scheduled"], 702: ["completed"]}  # waiting, paused, done
    assert worker.metrics.worker_runs._value.get() >= 3


async def test_a_release_acknowledged_during_a_run_is_counted_once(db):
    """The window's reads are one statement: a release HubSpot acknowledges between the queue
    lock's count of sends in flight and the read of recent releases is not counted twice (a
    double count held a queue for a whole period: 10,000 per minute stalled at 9,900)."""
    step = Step(workflow_id=710, action_id=1, limit=10, period=1, unit="minutes")
    queue_id = step.queue_id(PORTAL)
    _store(db, step, _ids(step, 0, 1), EPOCH)
    [lease] = db.transaction_sync(executions_sql.take_pending, queue_id, 1, EPOCH, EPOCH + dt.timedelta(minutes=2))
    with db.engine.connect() as run, run.begin():  # the worker's transaction (READ COMMITTED)
        locked = queues_sql.lock_queue(run, queue_id, EPOCH)
        db.transaction_sync(executions_sql.mark_released, [lease.callback_id], EPOCH)  # HubSpot answers now
        recent, in_flight = executions_sql.window_state_of(run, {queue_id: (EPOCH - dt.timedelta(minutes=1), 10)})[queue_id]
    assert locked is not None and locked.releasing == 1  # the lock's count, before the answer
    assert (len(recent), in_flight) == (1, 0)  # one snapshot: released, not also in flight


class _SlowAcks(PortalSide):
    """HubSpot acknowledging each hand-over 0.3 s (virtual) after it, as over a network."""

    async def submit(self, portal_id: int, releases: Sequence[Lease]) -> None:
        await trio.sleep(0.3)
        await super().submit(portal_id, releases)


@pytest.mark.parametrize("predicted_s", [0.0, 0.3])
async def test_a_queue_waiting_for_acknowledgements_runs_when_its_window_opens(db, autojump_clock, predicted_s):
    """A window counts a release from its acknowledgement, so a queue of 1 per second whose
    acks take 0.3 s opens 1.3 s after each run. Told that latency, the worker runs it then,
    once per release; not told, it runs at 1 s, finds the window full and runs again."""
    step = Step(workflow_id=120, action_id=1, limit=1, period=1, unit="seconds")
    clock = TrioClock(EPOCH)
    portal = _SlowAcks(db, clock)
    ids = _ids(step, 0, 6)
    _store(db, step, ids, clock.now())
    worker = ThrottleWorker(db, clock, portal.submit, ack_latency=lambda: predicted_s)
    scheduler = Scheduler(db, clock, {THROTTLE_JOB_KIND: worker}, SchedulerConfig(workers=8, poll_interval_s=1.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        await wait_until(lambda: [state for _, state in _jobs_of(db, step)] == ["completed"], timeout_s=600, step_s=1)
        nursery.cancel_scope.cancel()
    assert portal.released() == ids
    assert max_in_window(portal.times, dt.timedelta(seconds=1)) == 1
    runs = worker.metrics.registry.get_sample_value("throttled_worker_runs_total")
    # One run per batch here (one queue), each timed.
    assert worker.metrics.registry.get_sample_value("throttled_worker_run_seconds_count") == runs
    if predicted_s:
        assert runs <= len(ids) + 1, f"{runs} runs for {len(ids)} releases: the window was looked at too early"
    else:
        assert runs >= 2 * len(ids) - 1, f"only {runs} runs: this case should show the early looks it costs"
