"""Per-owner limits: a step's ``partition_key`` makes its limit hold per distinct value, below
HTTP on real PostgreSQL with the real scheduler and throttle worker, in virtual time
(the harness of ``test_throttle_semantics.py``).

Each partition is a queue of its own under the step's queue (``throttle/queue_ids.py``), so
the strict window is the one every queue has, per partition; a partition with nothing left
keeps no job.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import defaultdict

import pytest
import sqlalchemy as sa
import trio

from tests.conftest import EPOCH, install_portal
from tests.support.portal_side import PortalSide
from tests.support.virtual_worker import start_worker
from tests.support.waiting import wait_until
from throttled.clock import TrioClock
from throttled.control import Conflict
from throttled.control.queues import list_queues, pause_queue, resume_queue
from throttled.db import queues as queues_sql
from throttled.db import tables
from throttled.ingest.payload import parse_enrollment
from throttled.ingest.store import step_row, store_enrollments
from throttled.testing import Step, enrollment_body
from throttled.throttle.block_length import BlockLimits
from throttled.throttle.job import THROTTLE_JOB_KIND
from throttled.throttle.rate import max_in_window
from throttled.throttle.step import StepSettings

PORTAL = 31338
BLOCK = BlockLimits(dt.timedelta(days=30), dt.timedelta(weeks=52))
MINUTE = dt.timedelta(minutes=1)
SETTINGS = StepSettings(1, 1, "minutes")


@pytest.fixture(autouse=True)
def portal_installed(db):
    install_portal(db, PORTAL)


def _plan(step: Step, owners: int, each: int) -> dict[str, str]:
    """``{callback id: owner}``: ``each`` records of every owner, owners interleaved as
    enrollments arrive; owner "" is a record without an owner."""
    return {f"ap-{PORTAL}-{step.workflow_id}-{step.action_id}-{n}x{o}": (str(9000 + o) if o < owners - 1 else "")
            for n in range(each) for o in range(owners)}


def _store(db, now: dt.datetime, step: Step, plan: dict[str, str]) -> None:
    enrollments = []
    for cid, owner in plan.items():
        data = json.loads(enrollment_body(cid, PORTAL, step))
        data["inputFields"]["partition_key"] = owner
        enrollments.append(parse_enrollment(json.dumps(data).encode()))
    for start in range(0, len(enrollments), 500):  # group commits as the batcher makes them
        db.transaction_sync(store_enrollments, enrollments[start:start + 500], now, BLOCK)


def _live_jobs(db) -> int:
    j = tables.jobs.c
    query = sa.select(sa.func.count()).where(j.kind == THROTTLE_JOB_KIND,
                                             j.state.in_(("available", "scheduled", "executing", "retryable")))
    return db.transaction_sync(lambda conn: conn.execute(query).scalar_one())


@pytest.mark.parametrize(("owners", "limit", "each"), [(300, 2, 3), (40, 1, 4)])
async def test_the_window_holds_per_owner_over_many_owners(db, autojump_clock, owners, limit, each):
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock)
    step = Step(workflow_id=500 + owners, action_id=1, limit=limit, period=1, unit="minutes")
    plan = _plan(step, owners, each)
    _store(db, clock.now(), step, plan)
    [listed] = db.transaction_sync(list_queues, PORTAL, EPOCH)
    async with trio.open_nursery() as nursery:
        await start_worker(nursery, db, clock, portal)
        await portal.wait_for(len(plan), timeout_s=each * 60 + 30, tick_s=1)
        await wait_until(lambda: _live_jobs(db) == 0, timeout_s=120, step_s=1)
        nursery.cancel_scope.cancel()

    assert sorted(portal.ids) == sorted(plan)  # every record released once
    by_owner: dict[str, list[dt.datetime]] = defaultdict(list)
    for acked, cid in portal.acks:
        by_owner[plan[cid]].append(acked)
    assert len(by_owner) == owners
    worst = max(max_in_window(times, MINUTE) for times in by_owner.values())
    assert worst == limit, f"the busiest owner's minute held {worst}, limit {limit}"
    # Owners do not wait for each other: every owner's first `limit` went out at once.
    assert all(sorted(times)[limit - 1] - EPOCH < dt.timedelta(seconds=5) for times in by_owner.values())
    last = max(portal.times) - EPOCH
    assert (each - 1) // limit * MINUTE <= last < ((each - 1) // limit) * MINUTE + dt.timedelta(seconds=30), last
    # Listed as one queue with its partitions (the owner-less records wait in the step's queue itself).
    assert (listed.queue.queue_id, listed.partitions, listed.backlog) == (step.queue_id(PORTAL), owners - 1, len(plan))


async def test_pausing_the_steps_queue_pauses_every_owner(db, autojump_clock):
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock)
    step = Step(workflow_id=600, action_id=1, limit=1, period=1, unit="minutes")
    plan = _plan(step, 5, 2)
    _store(db, clock.now(), step, plan)
    db.transaction_sync(pause_queue, step.queue_id(PORTAL), EPOCH)
    async with trio.open_nursery() as nursery:
        await start_worker(nursery, db, clock, portal)
        await trio.sleep(600)  # ten virtual minutes: paused, nothing goes
        assert portal.ids == []
        db.transaction_sync(resume_queue, step.queue_id(PORTAL), clock.now())
        await portal.wait_for(len(plan), timeout_s=300, tick_s=1)
        nursery.cancel_scope.cancel()
    assert sorted(portal.ids) == sorted(plan)


def test_a_partition_alone_cannot_be_paused(db):
    """Operators act on the step's queue, which acts on every partition: one partition paused
    alone would hide behind its step's state in every list (a new-user trial)."""
    step = Step(workflow_id=610, action_id=1, limit=1, period=1, unit="minutes")
    plan = _plan(step, 2, 1)
    _store(db, EPOCH, step, plan)
    [partition] = [q.queue_id for q in db.transaction_sync(queues_sql.list_queues, PORTAL) if q.parent_queue_id]
    with pytest.raises(Conflict, match="one partition of"):
        db.transaction_sync(pause_queue, partition, EPOCH)
    assert db.transaction_sync(queues_sql.get_queue, partition).state == "active"


def test_statements_locking_several_queues_lock_them_in_id_order(db):
    """A worker batch locks its queues in id order; a statement locking several queues in
    another order deadlocks with it (bench/visits hit one). Rows stored in reverse order, so a
    plain UPDATE would lock them in that order: with the second partition held elsewhere, the
    family update must wait there having locked nothing after it."""
    parent = "queue:31338:1:1:0"
    family = [f"{parent}#{'b' * 16}", f"{parent}#{'a' * 16}", parent]  # stored last-to-first
    rows = [step_row(q, PORTAL, 1, SETTINGS, parent=None if q == parent else parent) for q in family]
    for row in rows:
        db.transaction_sync(queues_sql.upsert_queues, [row], EPOCH)
    new = {"max_throughput": 9, "time_period": 1, "time_unit": "minutes", "mode": "burst", "release_days": None,
           "release_start_minute": None, "release_end_minute": None, "time_zone": None}
    with db.engine.connect() as holder, holder.begin():
        holder.execute(sa.text("SELECT 1 FROM queues WHERE queue_id = :q FOR UPDATE"), {"q": family[1]})
        updater = threading.Thread(target=db.transaction_sync, args=(queues_sql.set_family_settings, parent, new, EPOCH))
        updater.start()
        try:
            deadline = time.monotonic() + 10
            while not db.transaction_sync(lambda conn: conn.execute(sa.text(  # the update waits on the held row
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%ordered%'")).first()):
                assert time.monotonic() < deadline, "the family update never waited on the held partition"
                time.sleep(0.02)
            with db.engine.connect() as probe, probe.begin():
                free = probe.execute(sa.text("SELECT 1 FROM queues WHERE queue_id = :q FOR UPDATE SKIP LOCKED"),
                                     {"q": family[0]}).first()
            assert free is not None, "the family update locked a later queue before an earlier one"
        finally:
            holder.rollback()
            updater.join(timeout=10)
    assert db.transaction_sync(queues_sql.get_queue, family[0]).max_throughput == 9
