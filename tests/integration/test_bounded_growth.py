"""Bounded growth behind the webhook: finished executions are pruned after their retention
(never one a retry or a window still needs), and the status views read the backlog, not the
finished rows (counted with PostgreSQL's per-transaction statistics, not timed)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tests.conftest import EPOCH
from throttled import control
from throttled.cleaner.cleaner import Cleaner
from throttled.clock import TrioClock
from throttled.db import executions as executions_sql
from throttled.db import queues as queues_sql
from throttled.ingest.inputs import Override
from throttled.ingest.payload import parse_enrollment
from throttled.ingest.store import store_enrollments
from throttled.testing import Step, enrollment_body
from throttled.throttle.block_length import BlockLimits
from throttled.web.status_page import status_snapshot

PORTAL = 4711
DAY = dt.timedelta(days=1)
LIMITS = BlockLimits(dt.timedelta(days=7), dt.timedelta(days=30))
HOURLY = Step(workflow_id=1, action_id=1, limit=100, period=1, unit="hours")
EIGHT_WEEKLY = Step(workflow_id=2, action_id=1, limit=1, period=8, unit="weeks")


def _enroll(db, step: Step, callback_id: str, now: dt.datetime) -> str:
    """Store one enrollment; the answer's state."""
    stored = db.transaction_sync(store_enrollments, [parse_enrollment(enrollment_body(callback_id, PORTAL, step))],
                                 now, LIMITS)
    return stored.answer_for(callback_id).state


def _finish(db, callback_id: str, at: dt.datetime) -> None:
    db.transaction_sync(executions_sql.mark_released, [callback_id], at)


def _states(db) -> dict[str, str]:
    return dict(db.transaction_sync(lambda conn: conn.execute(
        sa.text("SELECT callback_id, state FROM action_executions ORDER BY callback_id")).all()))


async def test_the_cleaner_prunes_finished_executions_no_retry_or_window_still_needs(db, autojump_clock):
    t0 = EPOCH
    _enroll(db, HOURLY, "old-released", t0)
    _finish(db, "old-released", t0 + dt.timedelta(minutes=1))
    _enroll(db, HOURLY, "recent-released", t0 + 6 * DAY)
    _finish(db, "recent-released", t0 + 6 * DAY)
    _enroll(db, EIGHT_WEEKLY, "slow-window", t0)
    _finish(db, "slow-window", t0 + dt.timedelta(minutes=1))  # counts in its window for 8 weeks
    _enroll(db, HOURLY, "still-pending", t0 + 5 * DAY)  # never pruned while held
    now = t0 + 8 * DAY
    cleaner = Cleaner(db, TrioClock(now), execution_retention_s=7 * 86400)
    await cleaner(None)  # the run's job is not read
    assert _states(db) == {"recent-released": "released", "slow-window": "released", "still-pending": "pending"}
    # A webhook HubSpot sends again within the retention still finds its execution:
    assert _enroll(db, HOURLY, "recent-released", now) == "released"


def test_status_views_read_the_backlog_not_the_finished_rows(db):
    # 100,000 finished executions over 100 queues, 10 pending in one: what the views read of
    # action_executions (its table and indexes) must not grow with the finished rows.
    t0 = EPOCH
    for n in range(10):
        _enroll(db, HOURLY, f"pending-{n}", t0)
    queues = """INSERT INTO queues (queue_id, portal_id, action_id, max_throughput, time_period, time_unit,
                                    created_at, updated_at)
                SELECT 'queue:4711:9:' || q || '\\:0', 4711, q, 10, 1, 'hours', :t, :t FROM generate_series(1, 100) q"""
    finished = """INSERT INTO action_executions (callback_id, portal_id, queue_id, received_at, expires_at, state,
                                                 released_at, finished_at)
                  SELECT 'done-' || i, 4711, 'queue:4711:9:' || (i % 100 + 1) || '\\:0', :t - interval '3 days',
                         :t + interval '4 days', 'released', :t - interval '2 days', :t - interval '2 days'
                  FROM generate_series(1, 100000) i"""
    for statement in (queues, finished):
        db.transaction_sync(lambda conn, sql=statement: conn.execute(sa.text(sql), {"t": t0}))
    db.transaction_sync(lambda conn: conn.execute(sa.text("ANALYZE action_executions")))

    def rows_read(conn: Connection, view) -> int:
        view(conn)
        return int(conn.execute(sa.text(
            """SELECT sum(pg_stat_get_xact_tuples_returned(oid) + pg_stat_get_xact_tuples_fetched(oid))
               FROM pg_class WHERE oid = 'action_executions'::regclass
                  OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'action_executions'::regclass)""")).scalar())

    views = {
        "queues list / operator API": lambda conn: control.list_queues(conn, None, t0),
        "status page": lambda conn: status_snapshot(conn, t0),
        "metrics gauges": executions_sql.count_active,
    }
    read = {name: db.transaction_sync(rows_read, view) for name, view in views.items()}
    assert all(n < 500 for n in read.values()), read
    # the measure can see a full read: the old whole-table count read them all
    assert db.transaction_sync(rows_read, executions_sql.execution_counts) >= 100_000
    listed = {o.queue.queue_id: o.counts for o in db.transaction_sync(control.list_queues, None, t0)}
    assert listed[HOURLY.queue_id(PORTAL)] == {"pending": 10, "released_last_hour": 0}


async def test_the_will_expire_count_is_kept_on_the_queue_for_the_lists(db, autojump_clock):
    step = Step(workflow_id=3, action_id=1, limit=1, period=1, unit="days")
    for n in range(10):
        _enroll(db, step, f"slow-{n}", EPOCH)
    # 1 per 2 days: releases at +0, +2 … +18 days; blocks of 7 days (up to 9.9 days for the
    # last, chosen at 1 per day): the 5th to the 10th expire first.
    db.transaction_sync(control.set_config, PORTAL, 1, Override(1, 2, "days", None), EPOCH)
    queue_id = step.queue_id(PORTAL)
    assert db.transaction_sync(queues_sql.get_queue, queue_id).expiring is None  # not counted yet
    await Cleaner(db, TrioClock(EPOCH))(None)
    row = db.transaction_sync(queues_sql.get_queue, queue_id)
    assert (row.expiring, row.expiring_complete, row.expiring_checked_at) == (6, True, EPOCH)
    listed = next(o for o in db.transaction_sync(control.list_queues, None, EPOCH) if o.queue.queue_id == queue_id)
    assert listed.expiring is not None and listed.expiring.count == 6
