"""The job table's promises (issue: Oban/River grade), on real PostgreSQL.

Time-driven cases use MockClock through TrioClock; the kill -9 cases use a real process.
"""

from __future__ import annotations

import collections
import datetime as dt
import subprocess
import sys
import threading
import time

import psycopg
import pytest
import sqlalchemy as sa
import trio

from tests.conftest import EPOCH
from tests.support.waiting import wait_until
from throttled.clock import TrioClock, WallClock
from throttled.db import jobs as jobs_sql
from throttled.db import leaders as leaders_sql
from throttled.db import nodes as nodes_sql
from throttled.db import tables
from throttled.db.engine import Database, libpq_url
from throttled.jobs.cron import Cron, CronJob
from throttled.jobs.leader import Leadership
from throttled.jobs.outcomes import Complete, Retry, Snooze
from throttled.jobs.scheduler import Scheduler, SchedulerConfig

OWNER_A, OWNER_B = "node-a:1:aaaa", "node-b:2:bbbb"


def job_row(db, job_id: int):
    return db.transaction_sync(lambda c: c.execute(sa.select(tables.jobs).where(tables.jobs.c.id == job_id)).one())


def insert(db, now, **kwargs) -> int:
    return db.transaction_sync(lambda c: jobs_sql.insert_job(c, kwargs.pop("kind", "k"), {}, now, **kwargs))[0]


# -- racing ---------------------------------------------------------------------------


async def test_three_schedulers_twenty_workers_ten_thousand_jobs_each_once(db):
    clock = WallClock()
    now = clock.now()
    db.transaction_sync(lambda c: c.execute(
        sa.text("INSERT INTO jobs (kind, args, scheduled_at, inserted_at) "
                "SELECT 'count', jsonb_build_object('i', i), :now, :now FROM generate_series(1, 10000) i"),
        {"now": now}))
    runs = collections.Counter()

    async def handler(run):
        runs[run.job.args["i"]] += 1
        return Complete()

    config = SchedulerConfig(workers=20, poll_interval_s=0.2)
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            await nursery.start(Scheduler(Database(db.url, pool_size=6), clock, {"count": handler}, config).run)
        await wait_until(lambda: len(runs) == 10_000, timeout_s=120, step_s=0.05)
        await wait_until(lambda: db.transaction_sync(jobs_sql.count_by_state) == {"completed": 10_000},
                         timeout_s=30, step_s=0.05)
        nursery.cancel_scope.cancel()
    assert set(runs.values()) == {1}


# -- transitions that find the job elsewhere change nothing ---------------------------------


def test_late_rescue_after_completion_changes_nothing(db):
    now = EPOCH
    job_id = insert(db, now)
    [job] = db.transaction_sync(jobs_sql.claim_due_jobs, OWNER_A, 1, now, now + dt.timedelta(seconds=30))
    assert db.transaction_sync(jobs_sql.complete_job, job.id, OWNER_A, now + dt.timedelta(seconds=1))
    later = now + dt.timedelta(hours=1)
    assert db.transaction_sync(jobs_sql.rescue_expired_leases, later) == (0, 0)
    assert job_row(db, job_id).state == "completed"


def test_completion_after_rescue_changes_nothing(db):
    now = EPOCH
    job_id = insert(db, now)
    db.transaction_sync(jobs_sql.claim_due_jobs, OWNER_A, 1, now, now + dt.timedelta(seconds=30))
    assert db.transaction_sync(jobs_sql.rescue_expired_leases, now + dt.timedelta(seconds=31)) == (1, 0)
    [again] = db.transaction_sync(jobs_sql.claim_due_jobs, OWNER_B, 1, now + dt.timedelta(seconds=32),
                                  now + dt.timedelta(seconds=62))
    assert not db.transaction_sync(jobs_sql.complete_job, job_id, OWNER_A, now + dt.timedelta(seconds=33))
    row = job_row(db, job_id)
    assert (row.state, row.attempted_by, again.attempt) == ("executing", OWNER_B, 2)


def test_operator_cancel_beats_a_running_handler(db):
    now = EPOCH
    job_id = insert(db, now)
    db.transaction_sync(jobs_sql.claim_due_jobs, OWNER_A, 1, now, now + dt.timedelta(seconds=30))
    assert db.transaction_sync(jobs_sql.cancel_now, job_id, now)
    assert not db.transaction_sync(jobs_sql.complete_job, job_id, OWNER_A, now)
    assert job_row(db, job_id).state == "cancelled"
    assert db.transaction_sync(jobs_sql.retry_now, job_id, now)
    assert job_row(db, job_id).state == "available"
    listed = db.transaction_sync(jobs_sql.list_jobs, "available")
    assert [j.id for j in listed] == [job_id]


# -- leases, heartbeat, crashes ----------------------------------------------------------


async def test_slow_job_on_a_live_daemon_is_never_rescued(db, autojump_clock):
    clock = TrioClock(EPOCH)
    job_id = insert(db, clock.now(), kind="slow")
    starts = []

    async def slow(run):
        starts.append(trio.current_time())
        await trio.sleep(100)  # ten lease lengths
        return Complete()

    config = SchedulerConfig(poll_interval_s=1, lease_s=10, rescue_interval_s=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(Scheduler(db, clock, {"slow": slow}, config).run)
        await nursery.start(Scheduler(db, clock, {"slow": slow}, config).run)  # a rescuer that would steal it
        await wait_until(lambda: job_row(db, job_id).state == "completed", timeout_s=1000, step_s=5)
        nursery.cancel_scope.cancel()
    assert len(starts) == 1 and job_row(db, job_id).attempt == 1


def _start_doomed_daemon(url: str, lease_s: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.support.job_daemon", url, str(lease_s)],
                            stdout=subprocess.PIPE, text=True)


async def _kill_after_claim(url: str, lease_s: float) -> None:
    process = _start_doomed_daemon(url, lease_s)
    try:
        line = await trio.to_thread.run_sync(process.stdout.readline)
        assert line.startswith("claimed"), line
    finally:
        process.kill()  # SIGKILL: no clean-up, the lease stays behind
        await trio.to_thread.run_sync(process.wait)


async def test_daemon_killed_mid_job_is_rescued_and_run_again(db):
    job_id = insert(db, WallClock().now(), kind="hang", max_attempts=5)
    await _kill_after_claim(db.url, lease_s=1.0)
    assert job_row(db, job_id).state == "executing"
    ran = trio.Event()

    async def finish(run):
        ran.set()
        return Complete()

    async with trio.open_nursery() as nursery:
        config = SchedulerConfig(poll_interval_s=0.1, lease_s=5, rescue_interval_s=0.2)
        await nursery.start(Scheduler(db, WallClock(), {"hang": finish}, config).run)
        with trio.fail_after(10):
            await ran.wait()
        await wait_until(lambda: job_row(db, job_id).state == "completed", timeout_s=5, step_s=0.05)
        nursery.cancel_scope.cancel()
    row = job_row(db, job_id)
    assert row.attempt == 2 and row.errors[0]["error"] == "lease expired"


async def test_crash_on_last_attempt_is_discarded_with_lease_expired(db):
    job_id = insert(db, WallClock().now(), kind="hang", max_attempts=1)
    await _kill_after_claim(db.url, lease_s=0.5)
    with trio.fail_after(10):
        while db.transaction_sync(jobs_sql.rescue_expired_leases, WallClock().now()) == (0, 0):
            await trio.sleep(0.1)
    row = job_row(db, job_id)
    assert row.state == "discarded"
    assert [e["error"] for e in row.errors] == ["lease expired"]


# -- outcomes ------------------------------------------------------------------------------


async def test_snoozes_do_not_lengthen_backoff(db, autojump_clock):
    clock = TrioClock(EPOCH)
    job_id = insert(db, clock.now(), kind="snoozy")
    calls: list[tuple[int, dt.datetime]] = []

    async def snoozy(run):
        calls.append((run.job.attempt, clock.now()))
        if len(calls) <= 100:
            return Snooze(clock.now() + dt.timedelta(seconds=1))
        if len(calls) == 101:
            return Retry("boom")
        return Complete()

    async with trio.open_nursery() as nursery:
        await nursery.start(Scheduler(db, clock, {"snoozy": snoozy}, SchedulerConfig(poll_interval_s=1)).run)
        await wait_until(lambda: job_row(db, job_id).state == "completed", timeout_s=10_000, step_s=10)
        nursery.cancel_scope.cancel()
    row = job_row(db, job_id)
    assert [attempt for attempt, _ in calls] == [1] * 101 + [2]
    assert row.snoozed == 100 and row.errors[0]["attempt"] == 1
    delay = (calls[101][1] - calls[100][1]).total_seconds()
    assert 0.9 <= delay <= 1.2, delay  # the backoff of attempt 1: 1 s ± 10 % (+ claim time)


# -- wake-up ------------------------------------------------------------------------------


async def test_listener_killed_next_job_still_picked_up(db):
    clock = WallClock()
    picked: list[float] = []

    async def record(run):
        picked.append(trio.current_time())
        return Complete()

    async with trio.open_nursery() as nursery:
        config = SchedulerConfig(poll_interval_s=1.0)
        await nursery.start(Scheduler(db, clock, {"k": record}, config).run)
        with psycopg.connect(libpq_url(db.url), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%%'").fetchall()
        assert killed, "the listener connection was found and killed"
        inserted_at = trio.current_time()
        insert(db, clock.now())
        with trio.fail_after(5):
            while not picked:
                await trio.sleep(0.01)
        first_delay = picked[0] - inserted_at
        await trio.sleep(1.5)  # the listener reconnects with backoff
        inserted_at = trio.current_time()
        insert(db, clock.now())
        with trio.fail_after(5):
            while len(picked) < 2:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert first_delay <= 1.0 + 0.3  # within the poll interval (+ a claim's time)
    assert picked[1] - inserted_at < 0.5  # NOTIFY works again after the reconnect


# -- time zones --------------------------------------------------------------------------------


async def test_session_time_zone_changes_no_schedule(empty_database, autojump_clock):
    clock = TrioClock(EPOCH)
    new_york = Database(empty_database, pool_size=4, session_timezone="America/New_York")
    utc = Database(empty_database, pool_size=2)
    try:
        job_id = insert(new_york, clock.now(), kind="tz", scheduled_at=clock.now() + dt.timedelta(hours=5))
        assert job_row(utc, job_id).scheduled_at == EPOCH + dt.timedelta(hours=5)
        ran_at = []

        async def tz(run):
            ran_at.append(clock.now())
            return Complete()

        async with trio.open_nursery() as nursery:
            quiet = SchedulerConfig(poll_interval_s=600, lease_s=3600, rescue_interval_s=3600)  # few timers to jump
            await nursery.start(Scheduler(new_york, clock, {"tz": tz}, quiet).run)
            await wait_until(lambda: ran_at, timeout_s=100_000, step_s=600)
            nursery.cancel_scope.cancel()
        assert EPOCH + dt.timedelta(hours=5) <= ran_at[0] < EPOCH + dt.timedelta(hours=5, seconds=1)
    finally:
        new_york.dispose()
        utc.dispose()


# -- leader and cron ---------------------------------------------------------------------------


async def test_leader_killed_new_leader_within_ttl_cron_once_per_slot(db, autojump_clock):
    clock = TrioClock(EPOCH + dt.timedelta(seconds=5))  # start inside a slot
    ttl = 10.0
    cron_job = CronJob("tick", "tick", dt.timedelta(minutes=1))
    nodes = {}

    async def node(name: str, task_status=trio.TASK_STATUS_IGNORED):
        leadership = Leadership(db, clock, "cron", name, ttl_s=ttl)
        nodes[name] = leadership
        async with trio.open_nursery() as n:
            await n.start(leadership.run)
            await n.start(Cron(db, clock, leadership, [cron_job]).run)
            task_status.started(n.cancel_scope)

    def leader() -> str | None:
        leaders = [name for name, lead in nodes.items() if lead.is_leader]
        assert len(leaders) <= 1, leaders
        return leaders[0] if leaders else None

    takeovers = []
    async with trio.open_nursery() as nursery:
        scopes = {name: await nursery.start(node, name) for name in ("a", "b", "c")}
        await wait_until(lambda: leader() is not None, timeout_s=100, step_s=0.5)
        for _ in range(2):
            await trio.sleep(95)
            victim = leader()
            scopes.pop(victim).cancel()  # killed: no resignation
            del nodes[victim]
            killed_at = clock.now()
            await wait_until(lambda: leader() is not None, timeout_s=100, step_s=0.25)
            # When the new leader won, by its own clock reading (robust to database threads
            # letting virtual time run on): its lease row says expires_at = won_at + ttl.
            owner, expires_at = db.transaction_sync(leaders_sql.current, "cron")
            assert owner == leader()
            takeovers.append((expires_at - dt.timedelta(seconds=ttl) - killed_at).total_seconds())
        await trio.sleep(130)
        end = clock.now()
        nursery.cancel_scope.cancel()

    keys = db.transaction_sync(lambda c: c.execute(
        sa.select(tables.jobs.c.unique_key).where(tables.jobs.c.kind == "tick")).scalars().all())
    assert len(keys) == len(set(keys))  # once per slot
    expected = {cron_job.slot_key(EPOCH + dt.timedelta(minutes=m)) for m in range(int((end - EPOCH).total_seconds() // 60) + 1)}
    assert set(keys) == expected  # and no slot missed across two leader deaths
    assert all(0 < t <= ttl + 0.1 for t in takeovers), takeovers


async def test_resigning_leader_is_replaced_within_a_quarter_ttl(db, autojump_clock):
    clock = TrioClock(EPOCH)
    a, b = Leadership(db, clock, "cron", "a", ttl_s=10), Leadership(db, clock, "cron", "b", ttl_s=10)
    a_scope = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_run_in, a_scope, a)
        await wait_until(lambda: a.is_leader, timeout_s=10, step_s=0.1)
        await nursery.start(b.run)
        await trio.sleep(30)
        assert a.is_leader and not b.is_leader
        a_scope.cancel()  # graceful shutdown: stop campaigning, then resign
        await a.resign()
        resigned_at = clock.now()
        await wait_until(lambda: b.is_leader, timeout_s=20, step_s=0.1)
        nursery.cancel_scope.cancel()
    owner, expires_at = db.transaction_sync(leaders_sql.current, "cron")
    won_at = expires_at - dt.timedelta(seconds=10)
    assert owner == "b" and (won_at - resigned_at).total_seconds() <= 2.5 + 0.1


async def _run_in(scope: trio.CancelScope, leadership: Leadership) -> None:
    with scope:
        await leadership.run()


# -- pruning ------------------------------------------------------------------------------------


async def test_two_pruners_delete_old_jobs_without_deadlock(db):
    now = EPOCH
    db.transaction_sync(lambda c: c.execute(sa.text(
        "INSERT INTO jobs (kind, state, scheduled_at, inserted_at, finalized_at) "
        "SELECT 'old', (ARRAY['completed','cancelled','discarded'])[1 + i % 3], :t, :t, :t "
        "FROM generate_series(1, 6000) i"), {"t": now - dt.timedelta(days=2)}))
    keep = insert(db, now, kind="live")
    db.transaction_sync(lambda c: c.execute(sa.text(
        "INSERT INTO jobs (kind, state, scheduled_at, inserted_at, finalized_at) VALUES ('recent', 'completed', :t, :t, :t)"),
        {"t": now - dt.timedelta(hours=1)}))
    deleted = []

    async def pruner():
        while (n := await db.transaction(jobs_sql.prune_jobs, now - dt.timedelta(days=1), 500)) > 0:
            deleted.append(n)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pruner)
        nursery.start_soon(pruner)
    assert sum(deleted) == 6000 and max(deleted) <= 500
    left = db.transaction_sync(jobs_sql.count_by_state)
    assert left == {"available": 1, "completed": 1} and job_row(db, keep).state == "available"


def test_a_dead_daemons_jobs_are_rescued_before_their_lease_ends(db):
    now = WallClock().now()
    alive_id, dead_id, unknown_id = (insert(db, now, kind="k", unique_key=k) for k in ("a", "b", "c"))
    hour = dt.timedelta(hours=1)

    def claimed(conn):
        for job_id, owner in ((alive_id, "node-alive"), (dead_id, "node-dead"), (unknown_id, "node-older")):
            conn.execute(sa.text("UPDATE jobs SET state = 'executing', attempt = 1, attempted_by = :owner, "
                                 "leased_until = :until WHERE id = :id"), {"owner": owner, "until": now + hour, "id": job_id})
        nodes_sql.heartbeat(conn, "node-alive", now, now + hour)
        nodes_sql.heartbeat(conn, "node-dead", now - hour, now - dt.timedelta(seconds=1))
    db.transaction_sync(claimed)
    assert db.transaction_sync(jobs_sql.rescue_expired_leases, now) == (1, 0)
    # only the dead daemon's; one with no nodes row (an older daemon) keeps its lease
    assert [job_row(db, i).state for i in (alive_id, dead_id, unknown_id)] == ["executing", "available", "executing"]


# -- lock order ------------------------------------------------------------------------


_MANY_ROWS = {
    "renew": lambda c, ids, now: jobs_sql.renew_leases(c, OWNER_A, ids, now + dt.timedelta(seconds=30)),
    "complete": lambda c, ids, now: jobs_sql.complete_jobs(c, ids, OWNER_A, now),
    "snooze": lambda c, ids, now: jobs_sql.snooze_jobs(c, [(i, now + dt.timedelta(minutes=1)) for i in ids],
                                                       OWNER_A, now),
    "hand back": lambda c, ids, now: jobs_sql.hand_back_owned_jobs(c, OWNER_A, now),
}


@pytest.mark.parametrize("statement", list(_MANY_ROWS))
def test_statements_changing_several_jobs_lock_them_in_id_order(db, statement):
    """A batched throttle run locks its jobs in id order; the heartbeat's renewal locked in
    scan order and deadlocked with one (bench/release_accuracy). The jobs are stored so that a
    sequential scan meets the last first; with the middle one held elsewhere, the statement
    must wait there having locked nothing after it."""
    now = EPOCH
    ids = [insert(db, now) for _ in range(3)]
    claimed = db.transaction_sync(jobs_sql.claim_due_jobs, OWNER_A, 3, now, now + dt.timedelta(seconds=30))
    assert sorted(j.id for j in claimed) == ids
    db.transaction_sync(lambda c: c.execute(sa.text(  # move the first two behind the third on the page
        "UPDATE jobs SET args = '{\"moved\": true}' WHERE id = ANY(:ids)"), {"ids": ids[:2]}))

    def run_statement() -> None:
        with db.engine.connect() as conn, conn.begin():
            conn.execute(sa.text("SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off"))
            _MANY_ROWS[statement](conn, ids, now)

    with db.engine.connect() as holder, holder.begin():
        holder.execute(sa.text("SELECT 1 FROM jobs WHERE id = :id FOR UPDATE"), {"id": ids[1]})
        worker = threading.Thread(target=run_statement)
        worker.start()
        try:
            deadline = time.monotonic() + 10
            while not db.transaction_sync(lambda conn: conn.execute(sa.text(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%jobs%'")).first()):
                assert time.monotonic() < deadline, f"{statement} never waited on the held job"
                time.sleep(0.02)
            with db.engine.connect() as probe, probe.begin():
                free = probe.execute(sa.text("SELECT 1 FROM jobs WHERE id = :id FOR UPDATE SKIP LOCKED"),
                                     {"id": ids[2]}).first()
            assert free is not None, f"{statement} locked a later job before an earlier one"
        finally:
            holder.rollback()
            worker.join(timeout=10)
    assert not worker.is_alive(), f"{statement} still waits after the held job was let go"
