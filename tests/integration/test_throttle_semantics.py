"""What a step's settings mean, end to end below HTTP: real PostgreSQL, the real scheduler and
throttle worker, virtual time.

Enrollments are parsed from HubSpot-shaped bodies and stored with ``store_enrollments`` (what
the batcher commits); the worker's ``submit`` goes to :class:`PortalSide`, which stands in for
HubSpot acknowledging each completion at once (it marks the executions released at that
virtual moment, as the portal sender does after a 204). Time is ``MockClock`` read through
``TrioClock``; the scheduler polls only daily, so every prompt reaction below comes from a
NOTIFY or from the worker's own snooze arithmetic, never from polling. The clock never jumps
while a database call is in flight, and pool connections are opened before virtual time
matters, so a slow query on a loaded machine cannot shift a release in virtual time.

Covered: 1 per week; smooth mode; a queue shared by two steps; priority; a business hours
(weekdays and office hours) and a DST change inside one; ``release_after``; operator
overrides through the config cache (also before the cache hears of a change); holds after
HubSpot failures; pause, resume, drain, purge.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Sequence
from functools import partial
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import trio

from tests.conftest import EPOCH, install_portal
from tests.support.portal_side import PortalSide
from tests.support.virtual_worker import start_worker
from tests.support.waiting import wait_until
from throttled import control
from throttled.clock import TrioClock
from throttled.db import executions as executions_sql
from throttled.db import queues as queues_sql
from throttled.db import tables
from throttled.ingest.inputs import Override
from throttled.ingest.payload import parse_enrollment
from throttled.ingest.store import store_enrollments
from throttled.jobs.notifier import listen
from throttled.testing import Step, enrollment_body
from throttled.throttle.block_length import BlockLimits
from throttled.throttle.config_cache import CONFIG_CHANNEL, ConfigCache
from throttled.throttle.job import THROTTLE_JOB_KIND, throttle_job_key
from throttled.throttle.policy import PAUSED_RECHECK
from throttled.throttle.rate import max_in_window

PORTAL = 31337
BLOCK_S = BlockLimits(dt.timedelta(days=30), dt.timedelta(weeks=52))  # longer than every test's virtual span
BERLIN = ZoneInfo("Europe/Berlin")
SECOND, MINUTE, HOUR = dt.timedelta(seconds=1), dt.timedelta(minutes=1), dt.timedelta(hours=1)
AUTOJUMP_S = 0.02
#: Every prompt reaction must come within this much virtual time. A NOTIFY travels in real
#: time, so waits for one tick every TICK_S virtual seconds rather than let the clock jump far.
PROMPT = dt.timedelta(seconds=2)
TICK_S = 0.1


@pytest.fixture(autouse=True)
def portal_installed(db):
    """The worker holds queues of portals it cannot call: install this one."""
    install_portal(db, PORTAL)


def body(callback_id: str, step: Step, object_id: int = 1, **inputs: object) -> bytes:
    """A HubSpot-shaped enrollment for ``step`` with extra optional inputs (as strings)."""
    data = json.loads(enrollment_body(callback_id, PORTAL, step, object_id))
    data["inputFields"].update({k: str(v) for k, v in inputs.items()})
    return json.dumps(data).encode()


def ids_of(step: Step, start: int, n: int, tag: str = "") -> list[str]:
    return [f"ap-{PORTAL}-{step.workflow_id}-{step.action_id}-{tag}{i}" for i in range(start, start + n)]


def store(db, now: dt.datetime, step: Step, ids: Sequence[str], **inputs: object) -> int:
    """Store one batch (one commit) of enrollments of ``step``; returns how many were new."""
    enrollments = [parse_enrollment(body(cid, step, n, **inputs)) for n, cid in enumerate(ids)]
    return len(db.transaction_sync(store_enrollments, enrollments, now, BLOCK_S).new)


def jobs_of(db, queue_id: str) -> list[tuple[str, dt.datetime]]:
    """``(state, scheduled_at)`` of every throttle job the queue ever had, oldest first."""
    j = tables.jobs.c
    query = sa.select(j.state, j.scheduled_at).where(j.unique_key == throttle_job_key(queue_id)).order_by(j.id)
    return db.transaction_sync(lambda conn: [tuple(r) for r in conn.execute(query)])


def queue(db, queue_id: str) -> queues_sql.QueueRow:
    return db.transaction_sync(queues_sql.get_queue, queue_id)


def counts(db, queue_id: str) -> dict[str, int]:
    return db.transaction_sync(executions_sql.execution_counts, [queue_id]).get(queue_id, {})


def job_done(db, queue_id: str) -> bool:
    return [state for state, _ in jobs_of(db, queue_id)][-1:] == ["completed"]


async def release(db, clock: TrioClock, portal: PortalSide, count: int, timeout_s: float) -> None:
    """Run a worker until ``portal`` has acknowledged ``count`` releases (virtual seconds)."""
    async with trio.open_nursery() as nursery:
        await start_worker(nursery, db, clock, portal)
        await portal.wait_for(count, timeout_s=timeout_s)
        nursery.cancel_scope.cancel()


# -- rates ---------------------------------------------------------------------------------


async def test_one_per_week_releases_a_week_apart(db, autojump_clock):
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock)
    step = Step(workflow_id=300, action_id=1, limit=1, period=1, unit="weeks")
    ids = ids_of(step, 0, 3)
    assert store(db, clock.now(), step, ids) == 3
    async with trio.open_nursery() as nursery:
        await start_worker(nursery, db, clock, portal)
        await portal.wait_for(3, timeout_s=3 * 7 * 86400)
        await wait_until(lambda: job_done(db, step.queue_id(PORTAL)), timeout_s=3600, step_s=60)
        nursery.cancel_scope.cancel()

    assert portal.ids == ids
    week = dt.timedelta(weeks=1)
    for n, acked in enumerate(portal.times):  # t0, t0 + 1 week, t0 + 2 weeks (to the second)
        assert EPOCH + n * week <= acked < EPOCH + n * week + SECOND, (n, acked)


async def test_smooth_mode_spreads_releases_one_per_second(db, autojump_clock):
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock)
    step = Step(workflow_id=301, action_id=1, limit=10, period=10, unit="seconds")
    ids = ids_of(step, 0, 30)
    store(db, clock.now(), step, ids, mode="smooth")
    await release(db, clock, portal, 30, timeout_s=120)

    assert portal.ids == ids
    assert max_in_window(portal.times, SECOND) == 1  # never 10 at once
    assert max_in_window(portal.times, 10 * SECOND) == 10
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(portal.times)]
    assert all(1.0 <= g < 1.5 for g in gaps), gaps
    assert (portal.times[-1] - portal.times[0]).total_seconds() < 31


async def test_two_workflows_sharing_a_queue_share_its_rate(db, autojump_clock):
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock)
    first = Step(workflow_id=400, action_id=1, limit=5, period=5, unit="seconds")
    second = Step(workflow_id=401, action_id=2, limit=5, period=5, unit="seconds")
    shared_id = f"queue:{PORTAL}:shared:partners"
    a, b = ids_of(first, 0, 12), ids_of(second, 0, 12)
    store(db, clock.now(), first, a[:6], shared_queue="partners")
    store(db, clock.now(), second, b[:6], shared_queue="partners")
    async with trio.open_nursery() as nursery:
        await start_worker(nursery, db, clock, portal)
        await trio.sleep(3)  # more of both arrive while the queue is releasing
        store(db, clock.now(), second, b[6:], shared_queue="partners")
        store(db, clock.now(), first, a[6:], shared_queue="partners")
        await portal.wait_for(24, timeout_s=120)
        await wait_until(lambda: job_done(db, shared_id), timeout_s=60, step_s=1)
        nursery.cancel_scope.cancel()

    [only] = db.transaction_sync(queues_sql.list_queues, PORTAL)
    assert (only.queue_id, only.action_id) == (shared_id, None)
    throttle_jobs = db.transaction_sync(lambda c: c.execute(
        sa.select(tables.jobs.c.unique_key).where(tables.jobs.c.kind == THROTTLE_JOB_KIND)).scalars().all())
    assert throttle_jobs == [throttle_job_key(shared_id)]  # one job, all along
    assert sorted(portal.ids) == sorted(a + b)
    assert portal.ids == a[:6] + b[:6] + b[6:] + a[6:]  # one line, in arrival order
    assert max_in_window(portal.times, 5 * SECOND) == 5  # the union, not 5 per step
    assert (portal.times[-1] - portal.times[0]).total_seconds() >= 20  # 24 at 5 per 5 s


async def test_higher_priority_first_then_arrival_order(db, autojump_clock):
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock)
    step = Step(workflow_id=302, action_id=1, limit=1, period=1, unit="seconds")
    low, high, mid = ids_of(step, 0, 3, "p0-"), ids_of(step, 0, 2, "p9-"), ids_of(step, 0, 1, "p5-")
    for ids, priority in ((low, 0), (high, 9), (mid, 5)):
        store(db, clock.now(), step, ids, priority=priority)
    await release(db, clock, portal, 6, timeout_s=60)

    assert portal.ids == high + mid + low
    assert max_in_window(portal.times, SECOND) == 1
    assert portal.batch_sizes == [1] * 6


# -- business hours -----------------------------------------------------------------------


async def test_release_window_waits_for_monday_office_hours_then_keeps_the_rate(db, autojump_clock):
    saturday = dt.datetime(2026, 3, 7, 10, 0, tzinfo=dt.UTC)
    monday_nine = dt.datetime(2026, 3, 9, 9, 0, tzinfo=BERLIN)  # 08:00 UTC (CET)
    clock = TrioClock(saturday)
    portal = PortalSide(db, clock)
    step = Step(workflow_id=303, action_id=1, limit=5, period=1, unit="hours")
    ids = ids_of(step, 0, 12)
    store(db, clock.now(), step, ids, release_days="mon-fri", release_hours="09:00-17:30", time_zone="Europe/Berlin")
    async with trio.open_nursery() as nursery:
        await start_worker(nursery, db, clock, portal)
        await clock.sleep_until(monday_nine - MINUTE)
        assert portal.acks == []  # the whole weekend: nothing
        [(state, due)] = jobs_of(db, step.queue_id(PORTAL))
        assert state == "scheduled" and due == monday_nine  # asleep until the window opens
        await portal.wait_for(12, timeout_s=4 * 3600)
        nursery.cancel_scope.cancel()

    assert portal.ids == ids
    local = [t.astimezone(BERLIN) for t in portal.times]
    assert [(t.strftime("%a %H:%M"), n) for t, n in _runs(local)] == [
        ("Mon 09:00", 5), ("Mon 10:00", 5), ("Mon 11:00", 2)]  # the rate, not the backlog
    assert max_in_window(portal.times, HOUR) == 5


async def test_a_window_opening_as_business_hours_close_waits_for_the_next_opening(db, autojump_clock):
    """1 per 30 minutes from 16:30 with hours ending 17:30: the third window opens at 17:30,
    when the hours are over (the end is not part of them)."""
    monday = dt.datetime(2026, 3, 9, 16, 30, tzinfo=BERLIN)
    clock = TrioClock(monday)
    portal = PortalSide(db, clock)
    step = Step(workflow_id=305, action_id=1, limit=1, period=30, unit="minutes")
    ids = ids_of(step, 0, 4)
    store(db, clock.now(), step, ids, release_days="mon-fri", release_hours="09:00-17:30", time_zone="Europe/Berlin")
    await release(db, clock, portal, 4, timeout_s=24 * 3600)

    assert [t.astimezone(BERLIN).strftime("%a %H:%M:%S") for t in portal.times] == [
        "Mon 16:30:00", "Mon 17:00:00", "Tue 09:00:00", "Tue 09:30:00"]


@pytest.mark.parametrize(
    ("begin", "nights"),
    [
        # 29 March 2026: 02:00 CET jumps to 03:00 CEST, so 00:00-06:00 is five real hours.
        (dt.datetime(2026, 3, 27, 12, tzinfo=dt.UTC),
         {"2026-03-28": [0, 1, 2, 3, 4, 5], "2026-03-29": [0, 1, 3, 4, 5], "2026-03-30": [0, 1, 2, 3, 4, 5]}),
        # 25 October 2026: 03:00 CEST falls back to 02:00 CET, so that night has seven hours.
        (dt.datetime(2026, 10, 23, 12, tzinfo=dt.UTC),
         {"2026-10-24": [0, 1, 2, 3, 4, 5], "2026-10-25": [0, 1, 2, 2, 3, 4, 5], "2026-10-26": [0, 1, 2, 3, 4, 5]}),
    ],
    ids=["spring-forward", "fall-back"],
)
async def test_dst_change_inside_the_release_window(db, autojump_clock, begin, nights):
    clock = TrioClock(begin)
    portal = PortalSide(db, clock)
    step = Step(workflow_id=304, action_id=1, limit=1, period=1, unit="hours")
    total = sum(len(hours) for hours in nights.values())
    ids = ids_of(step, 0, total)
    store(db, clock.now(), step, ids, release_hours="00:00-06:00", time_zone="Europe/Berlin")
    await release(db, clock, portal, total, timeout_s=4 * 86400)

    assert portal.ids == ids
    local = [t.astimezone(BERLIN) for t in portal.times]
    assert all(t.minute == 0 and t.second == 0 for t in local), local
    by_night: dict[str, list[int]] = {}
    for t in local:
        by_night.setdefault(t.date().isoformat(), []).append(t.hour)
    assert by_night == nights  # only while the window is open in local time
    assert max_in_window(portal.times, HOUR) == 1


# -- per execution -------------------------------------------------------------------------


async def test_release_after_holds_one_execution_until_its_time(db, autojump_clock):
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock)
    step = Step(workflow_id=305, action_id=1, limit=10, period=1, unit="seconds")
    later, much_later = ids_of(step, 0, 1, "later-"), ids_of(step, 0, 1, "much-later-")
    now_ids = ids_of(step, 0, 3)
    in_an_hour = EPOCH + HOUR
    in_two_hours_ms = int((EPOCH + 2 * HOUR).timestamp() * 1000)  # as HubSpot sends datetimes
    # Stored first, so they would be first in line if release_after were ignored.
    store(db, clock.now(), step, later, release_after=in_an_hour.astimezone(BERLIN).isoformat())
    store(db, clock.now(), step, much_later, release_after=in_two_hours_ms)
    store(db, clock.now(), step, now_ids)
    async with trio.open_nursery() as nursery:
        await start_worker(nursery, db, clock, portal)
        await portal.wait_for(3, timeout_s=10)
        assert portal.ids == now_ids and all(t < EPOCH + SECOND for t in portal.times)
        await portal.wait_for(5, timeout_s=3 * 3600)
        await wait_until(lambda: job_done(db, step.queue_id(PORTAL)), timeout_s=60, step_s=1)
        nursery.cancel_scope.cancel()

    assert portal.ids == now_ids + later + much_later
    assert in_an_hour <= portal.times[3] < in_an_hour + SECOND
    assert EPOCH + 2 * HOUR <= portal.times[4] < EPOCH + 2 * HOUR + SECOND


# -- operators -----------------------------------------------------------------------------


async def test_override_beats_the_step_until_deleted(db, autojump_clock):
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock)
    cache = ConfigCache(db, clock)  # TTL 60 s: longer than the test waits for a change
    step = Step(workflow_id=306, action_id=6, limit=100, period=1, unit="seconds")
    ids = ids_of(step, 0, 30)
    store(db, clock.now(), step, ids)
    db.transaction_sync(control.set_config, PORTAL, step.action_id,
                        Override(max_throughput=2, time_period=10, time_unit="seconds"), clock.now())
    async with trio.open_nursery() as nursery:
        await nursery.start(listen, db.url, {CONFIG_CHANNEL: cache.invalidate})
        await start_worker(nursery, db, clock, portal, overrides=cache.get)
        await portal.wait_for(6, timeout_s=60)
        await trio.sleep(21 - trio.current_time())
        assert len(portal.acks) == 6  # 2 at 0 s, 10 s and 20 s: the override's rate
        assert max_in_window(portal.times, 10 * SECOND) == 2

        # A faster override while the job sleeps until 30 s: woken, it uses the new rate now.
        changed_at = clock.now()
        await db.transaction(control.set_config, PORTAL, step.action_id,
                             Override(max_throughput=5, time_period=10, time_unit="seconds"), changed_at)
        await portal.wait_for(9, timeout_s=5, tick_s=TICK_S)
        faster = portal.since(changed_at)
        await trio.sleep(25 - trio.current_time())
        assert len(portal.acks) == 9  # 5 in (15 s, 25 s]: 2 at 20 s, 3 at 21 s

        deleted_at = clock.now()
        await db.transaction(control.delete_config, PORTAL, step.action_id, deleted_at)
        await portal.wait_for(30, timeout_s=5, tick_s=TICK_S)  # not at 30 s: woken at once
        after_delete = portal.since(deleted_at)

        await wait_until(lambda: job_done(db, step.queue_id(PORTAL)), timeout_s=10, step_s=1)

        # A new override applies to the next enrollments at once, not after the cache's TTL.
        await trio.sleep(120)  # the rate window is long clear
        set_at = clock.now()
        await db.transaction(control.set_config, PORTAL, step.action_id,
                             Override(max_throughput=1, time_period=1, time_unit="minutes"), set_at)
        store(db, clock.now(), step, ids_of(step, 30, 10))
        await portal.wait_for(31, timeout_s=5, tick_s=TICK_S)
        await trio.sleep(150)
        late = portal.since(set_at)
        nursery.cancel_scope.cancel()

    assert portal.ids[:30] == ids
    assert len(faster) == 3 and max(faster) - changed_at < PROMPT
    assert len(after_delete) == 21 and max(after_delete) - deleted_at < PROMPT  # the step's 100/s
    assert len(late) == 3 and max_in_window(late, MINUTE) == 1, late  # at 0, 60 and 120 s
    assert late[0] - set_at < PROMPT


async def test_override_change_applies_even_before_the_cache_hears_of_it(db, autojump_clock):
    # No listener: this daemon's cache keeps the old override for its whole TTL, as when the
    # NOTIFY is late (a loaded daemon) or lost (a reconnecting listener). The job is woken by
    # the change and must not snooze for the old rate's hour.
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock)
    cache = ConfigCache(db, clock, ttl_s=3600)
    step = Step(workflow_id=309, action_id=9, limit=100, period=1, unit="seconds")
    ids = ids_of(step, 0, 10)
    store(db, clock.now(), step, ids)
    db.transaction_sync(control.set_config, PORTAL, step.action_id,
                        Override(max_throughput=1, time_period=1, time_unit="hours"), clock.now())
    async with trio.open_nursery() as nursery:
        await start_worker(nursery, db, clock, portal, overrides=cache.get)
        await portal.wait_for(1, timeout_s=5)
        await trio.sleep(5)
        changed_at = clock.now()
        await db.transaction(control.set_config, PORTAL, step.action_id,
                             Override(max_throughput=100, time_period=1, time_unit="seconds"), changed_at)
        await portal.wait_for(10, timeout_s=5, tick_s=TICK_S)
        nursery.cancel_scope.cancel()

    assert portal.ids == ids
    assert portal.times[0] < EPOCH + SECOND
    assert all(changed_at <= t < changed_at + PROMPT for t in portal.times[1:])
    assert cache.lookups == 1  # the cache itself still held the old value


async def test_hold_after_three_failures_then_recovery_with_backoff(db, autojump_clock):
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock)
    step = Step(workflow_id=307, action_id=1, limit=100, period=1, unit="seconds")
    queue_id = step.queue_id(PORTAL)

    def fail(times: int) -> list[str]:
        held = []
        for _ in range(times):
            held = db.transaction_sync(partial(queues_sql.record_failure, threshold=3, hold_s=1800, max_hold_s=86400),
                                       [queue_id], "HubSpot 503", clock.now())  # as the portal sender gives up
        return held

    first = ids_of(step, 0, 4)
    store(db, clock.now(), step, first)
    assert fail(2) == [] and queue(db, queue_id).state == "active"
    assert fail(1) == [queue_id]  # the third failure in a row
    held = queue(db, queue_id)
    assert (held.state, held.on_hold_until, held.holds) == ("on_hold", EPOCH + 30 * MINUTE, 1)
    async with trio.open_nursery() as nursery:
        await start_worker(nursery, db, clock, portal)
        await clock.sleep_until(EPOCH + 30 * MINUTE - SECOND)
        assert portal.acks == []  # nothing during the hold
        await portal.wait_for(4, timeout_s=120)
        assert all(EPOCH + 30 * MINUTE <= t < EPOCH + 30 * MINUTE + SECOND for t in portal.times)

        # Three more failures with no success between: the second hold lasts twice as long.
        second_start = clock.now()
        assert fail(3) == [queue_id]
        assert queue(db, queue_id).on_hold_until == second_start + 60 * MINUTE
        store(db, clock.now(), step, ids_of(step, 4, 4))
        await clock.sleep_until(second_start + 60 * MINUTE - SECOND)
        assert len(portal.acks) == 4
        await portal.wait_for(8, timeout_s=120)
        assert all(second_start + 60 * MINUTE <= t < second_start + 61 * MINUTE for t in portal.times[4:])

        # A success clears the hold and its backoff: the next hold is 30 minutes again.
        db.transaction_sync(queues_sql.record_success, [queue_id], clock.now())
        cleared = queue(db, queue_id)
        assert (cleared.state, cleared.on_hold_until, cleared.consecutive_failures, cleared.holds) == (
            "active", None, 0, 0)
        third_start = clock.now()
        assert fail(3) == [queue_id]
        assert queue(db, queue_id).on_hold_until == third_start + 30 * MINUTE
        nursery.cancel_scope.cancel()


async def test_pause_resume_drain_purge(db, autojump_clock):
    clock = TrioClock(EPOCH)
    portal = PortalSide(db, clock)
    step = Step(workflow_id=308, action_id=1, limit=1, period=10, unit="seconds")
    queue_id = step.queue_id(PORTAL)
    ids = ids_of(step, 0, 20)
    store(db, clock.now(), step, ids)
    async with trio.open_nursery() as nursery:
        await start_worker(nursery, db, clock, portal)
        await portal.wait_for(1, timeout_s=5)

        # Paused: nothing goes, however long; the job sleeps instead of spinning.
        await trio.sleep(2)
        await db.transaction(control.pause_queue, queue_id, clock.now())
        await trio.sleep(120)
        assert len(portal.acks) == 1 and queue(db, queue_id).state == "paused"
        [(state, due)] = jobs_of(db, queue_id)
        assert state == "scheduled" and due - clock.now() > 0.5 * PAUSED_RECHECK

        # Resumed: the job is woken, the next release goes at once (the window is long clear).
        resumed_at = clock.now()
        await db.transaction(control.resume_queue, queue_id, resumed_at)
        await portal.wait_for(2, timeout_s=5, tick_s=TICK_S)
        assert portal.times[1] - resumed_at < PROMPT
        await trio.sleep(3)
        assert len(portal.acks) == 2  # and then the rate again: next one 10 s later

        # Drained: the whole backlog at once, ignoring the rate; active again when empty.
        drained_at = clock.now()
        overview = await db.transaction(control.drain_queue, queue_id, drained_at)
        assert overview.queue.state == "draining" and overview.backlog == 18
        await portal.wait_for(20, timeout_s=5, tick_s=TICK_S)
        assert all(t - drained_at < PROMPT for t in portal.times[2:])
        await wait_until(lambda: job_done(db, queue_id), timeout_s=10, step_s=TICK_S)
        assert queue(db, queue_id).state == "active"

        # Purged: the pending backlog is cancelled, never completed; the job completes.
        more = ids_of(step, 20, 10)
        store(db, clock.now(), step, more)
        await trio.sleep(1)
        released_before = len(portal.acks)
        purged_at = clock.now()
        assert await db.transaction(control.purge_queue, queue_id, purged_at) == 30 - released_before
        await wait_until(lambda: job_done(db, queue_id), timeout_s=5, step_s=TICK_S)
        assert clock.now() - purged_at < PROMPT
        assert [s for s, _ in jobs_of(db, queue_id)] == ["completed", "completed"]
        await trio.sleep(60)
        nursery.cancel_scope.cancel()

    assert portal.ids == ids + more[: released_before - 20]
    assert counts(db, queue_id) == {"released": released_before, "cancelled": 30 - released_before}


def _runs(times: list[dt.datetime]) -> list[tuple[dt.datetime, int]]:
    """Consecutive equal times as ``(time, how many)``."""
    runs: list[tuple[dt.datetime, int]] = []
    for t in times:
        if runs and runs[-1][0] == t:
            runs[-1] = (t, runs[-1][1] + 1)
        else:
            runs.append((t, 1))
    return runs
