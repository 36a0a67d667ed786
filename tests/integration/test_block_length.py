"""No enrollment accepted that can only expire: the block each webhook asks HubSpot for covers
the record's forecast release, or the record is refused where the customer sees it.

Webhooks go through the real endpoint (the Quart app, its signature check and the batcher's
group commit) in process, so the whole path runs on virtual time (``MockClock`` through
``TrioClock``); releases run through the real scheduler and throttle worker, with
:class:`PortalSide` acknowledging each completion as HubSpot would.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
from structlog.testing import capture_logs

from tests.conftest import EPOCH, install_portal
from tests.support.blocks import held_for_s
from tests.support.portal_side import PortalSide
from tests.support.virtual_worker import start_worker
from tests.support.waiting import wait_until
from throttled import control
from throttled.clock import TrioClock
from throttled.control.overrides import set_config
from throttled.crypto import KeyRing
from throttled.db import executions as executions_sql
from throttled.db import queues as queues_sql
from throttled.db.engine import Database
from throttled.db.executions import Lease, NewExecution
from throttled.hubspot import recorder
from throttled.hubspot.answers import Action, Answer, RefersTo
from throttled.hubspot.client import HubSpotClient
from throttled.hubspot.signatures import SignedRequest, signed_headers
from throttled.hubspot.tokens import TokenStore
from throttled.ingest.batcher import Batcher
from throttled.ingest.inputs import Override
from throttled.service.metrics import Metrics
from throttled.testing import ACTION_PATH, Step, enrollment_body
from throttled.throttle.block_length import BlockLimits
from throttled.web.app import WebDeps, create_app

PORTAL = 60606
SECRET = "block-length-secret"
PUBLIC_URL = "https://throttle.example.com"
LIMITS = BlockLimits(shortest=dt.timedelta(days=7), longest=dt.timedelta(days=30))
WEEK, DAY = dt.timedelta(weeks=1), dt.timedelta(days=1)

Post = Callable[[bytes], Awaitable[dict[str, Any]]]


@asynccontextmanager
async def endpoint(db: Database, clock: TrioClock, limits: BlockLimits, metrics: Metrics) -> AsyncIterator[Post]:
    """The action webhook with its batcher running; yields ``post(body) -> answer JSON``."""
    client = HubSpotClient("http://127.0.0.1:9", "id", SECRET)  # the OAuth routes are not called
    batcher = Batcher(db, clock, limits, metrics=metrics)
    deps = WebDeps(db=db, clock=clock, batcher=batcher, tokens=TokenStore(db, clock, KeyRing.single(bytes(32)), client),
                   client=client, metrics=metrics, public_url=PUBLIC_URL, client_id="id", client_secret=SECRET,
                   authorize_url="https://app.hubspot.com/oauth/authorize")
    app = create_app(deps)

    async def post(body: bytes) -> dict[str, Any]:
        request = SignedRequest("POST", PUBLIC_URL + ACTION_PATH, body)
        headers = signed_headers(SECRET, request, int(clock.now().timestamp() * 1000))
        response = await app.test_client().post(ACTION_PATH, data=body, headers=headers)
        assert response.status_code == 200, await response.get_data()
        answer: dict[str, Any] = json.loads(await response.get_data())
        return answer

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(batcher.run)
            yield post
            nursery.cancel_scope.cancel()
    finally:
        await client.aclose()


def block_of(answer: dict[str, Any]) -> dt.timedelta:
    return dt.timedelta(seconds=held_for_s(answer))


def ids(step: Step, n: int) -> list[str]:
    return [f"ap-{PORTAL}-{step.workflow_id}-{step.action_id}-{i}" for i in range(n)]


async def test_one_per_week_each_block_covers_its_release(db, autojump_clock):
    install_portal(db, PORTAL)
    clock = TrioClock(EPOCH)
    step = Step(workflow_id=1801, action_id=1, limit=1, period=1, unit="weeks")
    async with endpoint(db, clock, LIMITS, Metrics()) as post:
        answers = [await post(enrollment_body(cid, PORTAL, step)) for cid in ids(step, 3)]
    blocks = [block_of(a) for a in answers]
    # forecast releases: now, +1 week, +2 weeks — each block covers its own with a margin
    assert blocks[0] == LIMITS.shortest and WEEK < blocks[1] < blocks[2] and blocks[2] > 2 * WEEK

    portal = PortalSide(db, clock)
    async with trio.open_nursery() as nursery:
        await start_worker(nursery, db, clock, portal)
        await portal.wait_for(3, timeout_s=3 * WEEK.total_seconds())
        nursery.cancel_scope.cancel()
    assert portal.ids == ids(step, 3)
    for (acked, cid), block in zip(portal.acks, blocks, strict=True):
        assert acked - EPOCH <= block, f"{cid} released at +{acked - EPOCH}, after its block of {block}"
    counts = db.transaction_sync(executions_sql.execution_counts, [step.queue_id(PORTAL)])[step.queue_id(PORTAL)]
    assert counts == {"released": 3}, counts  # none expired


async def test_a_backlog_past_the_longest_block_is_refused_where_the_customer_sees_it(db, autojump_clock):
    install_portal(db, PORTAL)
    clock = TrioClock(EPOCH)
    step = Step(workflow_id=1802, action_id=1, limit=1, period=1, unit="days")
    metrics = Metrics()
    async with endpoint(db, clock, LIMITS, metrics) as post:
        answers = [await post(enrollment_body(cid, PORTAL, step)) for cid in ids(step, 40)]
        again = await post(enrollment_body(ids(step, 40)[-1], PORTAL, step))  # HubSpot retries a refused one

    held = [a for a in answers if a["outputFields"]["hs_execution_state"] == "BLOCK"]
    refused = answers[len(held):]
    # 1 per day, 30 days at most, a margin of 1 h + 10 %: the 28th waits 27 days (block 29.7 days
    # + 1 h); the 29th would wait 28 days (30.8 days + 1 h): refused, and all after it.
    assert len(held) == 28 and len(refused) == 12
    assert all(a["outputFields"]["hs_execution_state"] == "BLOCK" for a in answers[:28])
    for answer in [*refused, again]:
        assert answer["outputFields"] == {"hs_execution_state": "FAIL_CONTINUE", "throttle_outcome": "queue_too_long",
                                          "errorCode": "QUEUE_TOO_LONG"}
    for n, answer in enumerate(held):  # each held one's block covers its forecast (n days) with the margin
        assert n * DAY + dt.timedelta(hours=1) < block_of(answer) <= LIMITS.longest
    queue_id = step.queue_id(PORTAL)
    stored = db.transaction_sync(executions_sql.execution_counts, [queue_id])[queue_id]
    assert stored == {"pending": 28}  # nothing refused was written
    queue = db.transaction_sync(queues_sql.get_queue, queue_id)
    assert queue.refused == 13 and queue.refused_at == EPOCH  # the retry counts again
    assert metrics.webhooks.labels("too_long")._value.get() == 13
    overview = db.transaction_sync(control.show_queue, queue_id, EPOCH)
    assert "13 refused as too long so far, last 2026-03-02 09:00Z" in overview.warnings
    assert overview.expiring is not None and overview.expiring.count == 0

    portal = PortalSide(db, clock)
    async with trio.open_nursery() as nursery:  # every held one is released before its block ends
        await start_worker(nursery, db, clock, portal)
        await portal.wait_for(28, timeout_s=28 * DAY.total_seconds())
        nursery.cancel_scope.cancel()
    assert db.transaction_sync(executions_sql.execution_counts, [queue_id])[queue_id] == {"released": 28}


async def test_slowing_a_queue_shows_who_will_expire_before_their_turn(db, autojump_clock):
    install_portal(db, PORTAL)
    clock = TrioClock(EPOCH)
    step = Step(workflow_id=1803, action_id=7, limit=10, period=1, unit="hours")
    async with endpoint(db, clock, LIMITS, Metrics()) as post:
        for cid in ids(step, 10):
            assert block_of(await post(enrollment_body(cid, PORTAL, step))) == LIMITS.shortest
    queue_id = step.queue_id(PORTAL)
    assert db.transaction_sync(control.show_queue, queue_id, EPOCH).expiring.count == 0

    # An operator slows it to 1 per day: the blocks (7 days) were chosen at the webhooks and
    # cannot be extended. Releases at +0 … +9 days: the 9th and 10th come after their blocks.
    slower = Override(1, 1, "days", None)
    preview = db.transaction_sync(control.preview_config, PORTAL, 7, slower, EPOCH)  # the dry run
    assert {q: e.count for q, e in preview.items()} == {queue_id: 2}
    assert db.transaction_sync(queues_sql.get_config, PORTAL, 7) is None  # nothing saved
    db.transaction_sync(set_config, PORTAL, 7, slower, EPOCH)
    found = db.transaction_sync(control.expiring_for_action, PORTAL, 7, EPOCH)
    assert {q: e.count for q, e in found.items()} == {queue_id: 2}
    overview = db.transaction_sync(control.show_queue, queue_id, EPOCH)
    assert overview.expiring.count == 2 and overview.expiring.complete
    assert "2 held will expire before their turn" in overview.warnings
    assert overview.as_json()["expiring"] == {"count": 2, "scanned": 10, "complete": True,
                                              "first_end": (EPOCH + LIMITS.shortest).isoformat(), "at": EPOCH.isoformat()}
    assert not any("stopped" in w for w in overview.warnings)  # it runs: no countdown to show
    db.transaction_sync(control.pause_queue, queue_id, EPOCH)
    paused = db.transaction_sync(control.show_queue, queue_id, EPOCH)
    assert "stopped: the first held block ends 2026-03-09 09:00Z" in paused.warnings


def test_hubspot_ending_a_block_early_is_logged(db):
    # The maximum block is undocumented: a callback HubSpot calls expired while the block we
    # asked for has days left is the sign that it caps blocks, and the operator is told.
    asked = dt.timedelta(days=30)
    rows = [NewExecution(cid, PORTAL, "queue:60606:1:1:0", None, None, {}, EPOCH + length)
            for cid, length in (("early", asked), ("on-time", dt.timedelta(minutes=30)))]
    db.transaction_sync(executions_sql.insert_executions, rows, EPOCH)
    leases = [Lease(r.callback_id, PORTAL, r.queue_id, EPOCH + dt.timedelta(minutes=2)) for r in rows]
    gone = Answer(Action.EXPIRED, RefersTo.CALLBACK, "404 callback not found", "gone", status=404)
    with capture_logs() as logs:
        assert db.transaction_sync(recorder.ended, leases, gone, EPOCH + DAY) == "expired"
    early = [e for e in logs if e["event"] == "callback.expired_early"]
    assert [e["callback_id"] for e in early] == ["early"]  # the other's block had run out anyway
    assert early[0]["block_asked"] == str(asked) and "THROTTLED_BLOCK_MAX" in early[0]["note"]


async def test_a_webhook_sent_again_gets_the_rest_of_its_block_even_after_a_purge(db, autojump_clock):
    # A purged record is never completed: HubSpot moves it on when its block ends. Its webhook
    # sent again once got a fresh 7-day block; it gets the rest of the first one.
    clock = TrioClock(EPOCH)
    step = Step(workflow_id=1804, action_id=1, limit=1, period=1, unit="hours")
    purged = ids(step, 1)[0]
    async with endpoint(db, clock, LIMITS, Metrics()) as post:
        assert block_of(await post(enrollment_body(purged, PORTAL, step))) == LIMITS.shortest
        assert db.transaction_sync(control.purge_queue, step.queue_id(PORTAL), EPOCH) == 1
        await trio.sleep(DAY.total_seconds())
        again = await post(enrollment_body(purged, PORTAL, step))
    assert block_of(again) == LIMITS.shortest - DAY


async def test_records_of_a_higher_priority_that_push_held_ones_past_their_blocks_are_reported(db, autojump_clock):
    clock = TrioClock(EPOCH)
    step = Step(workflow_id=1805, action_id=1, limit=1, period=1, unit="days")
    with capture_logs() as logs:
        async with endpoint(db, clock, LIMITS, Metrics()) as post:
            for cid in ids(step, 6):  # positions 1-6: releases at +0 … +5 days, 7-day blocks
                block_of(await post(enrollment_body(cid, PORTAL, step)))
            urgent = json.loads(enrollment_body(f"ap-{PORTAL}-1805-1-u", PORTAL, step))
            for n in range(3):  # three of priority 9 go first: the 6th now comes at +8 days
                urgent["callbackId"] = f"ap-{PORTAL}-1805-1-u{n}"
                urgent["inputFields"]["priority"] = "9"
                block_of(await post(json.dumps(urgent).encode()))
            await wait_until(lambda: any(e["event"] == "queue.will_expire" for e in logs), timeout_s=60)
    warned = [e for e in logs if e["event"] == "queue.will_expire"]
    assert len(warned) == 1 and warned[0]["count"] == 2 and warned[0]["queue_id"] == step.queue_id(PORTAL)
    # the 5th is due exactly when its block ends, the 6th a day after: both count once time moved
    overview = db.transaction_sync(control.show_queue, step.queue_id(PORTAL), clock.now())
    assert clock.now() > EPOCH and overview.expiring.count == 2


async def test_a_release_date_past_the_longest_block_is_refused_for_that_reason(db, autojump_clock):
    clock = TrioClock(EPOCH)
    step = Step(workflow_id=1806, action_id=1, limit=100, period=1, unit="seconds")
    body = json.loads(enrollment_body(f"ap-{PORTAL}-1806-1-0", PORTAL, step))
    body["inputFields"]["release_after"] = (EPOCH + dt.timedelta(days=40)).isoformat()
    async with endpoint(db, clock, LIMITS, Metrics()) as post:
        answer = await post(json.dumps(body).encode())
    assert answer["outputFields"] == {"hs_execution_state": "FAIL_CONTINUE", "throttle_outcome": "release_after_too_late",
                                      "errorCode": "RELEASE_AFTER_TOO_LATE"}
