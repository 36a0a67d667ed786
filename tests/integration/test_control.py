"""The control plane's views (``throttled/control/``) on a real database."""

from __future__ import annotations

import datetime as dt

from tests.conftest import EPOCH, install_portal
from throttled import control
from throttled.db import portals as portals_sql
from throttled.db.time import database_now
from throttled.ingest.payload import parse_enrollment
from throttled.ingest.store import store_enrollments
from throttled.testing import Step, enrollment_body
from throttled.throttle.block_length import BlockLimits

STEP = Step(workflow_id=5, action_id=1, limit=1, period=1, unit="hours")


def _queue(db, portal: int):
    db.transaction_sync(store_enrollments, [parse_enrollment(enrollment_body(f"ap-{portal}-1-1-0", portal, STEP))],
                        EPOCH, BlockLimits(dt.timedelta(days=1), dt.timedelta(days=30)))
    return db.transaction_sync(control.show_queue, STEP.queue_id(portal))


def test_a_queue_says_why_its_portal_cannot_be_called(db):
    # A new-user trial: enrollments for a portal that never installed the app waited with the
    # queue shown "active" and no reason anywhere.
    never = _queue(db, 99999)
    assert "not installed" in never.portal_held and never.as_json()["portal_hold_reason"]
    install_portal(db, 99999)
    assert db.transaction_sync(control.show_queue, STEP.queue_id(99999)).portal_held is None
    db.transaction_sync(portals_sql.claim_refresh, 99999, "me", EPOCH + dt.timedelta(seconds=30))
    assert db.transaction_sync(portals_sql.revoke, 99999, "me", EPOCH)
    assert "revoked" in db.transaction_sync(control.show_queue, STEP.queue_id(99999)).portal_held


def test_an_operator_lifts_a_portal_hold(db):
    install_portal(db, 4242)
    queue = _queue(db, 4242)
    now = db.transaction_sync(database_now)  # show_queue judges holds by the database's time
    until = db.transaction_sync(portals_sql.hold, 4242, "callbacks API answered HTTP 404", now)
    assert until > now and "HTTP 404" in db.transaction_sync(control.show_queue, queue.queue.queue_id).portal_held
    assert db.transaction_sync(control.lift_portal_hold, 4242, now) is True
    assert db.transaction_sync(control.show_queue, queue.queue.queue_id).portal_held is None
    assert db.transaction_sync(control.lift_portal_hold, 4242, now) is False  # not held any more
