"""Named throttles in the database: portal by portal, live or deleted, and their queue follows."""

from __future__ import annotations

import pytest

from tests.conftest import EPOCH
from throttled.control.named_throttles import (
    NamedThrottleNotFound,
    NamedThrottleTaken,
    create_named,
    set_named_state,
    update_named,
)
from throttled.db import named_throttles as named_sql
from throttled.db import queues as queues_sql
from throttled.ingest.inputs import NamedThrottleInput
from throttled.ingest.store import step_row
from throttled.states import NamedThrottleState
from throttled.throttle.policy import step_of
from throttled.throttle.step import StepSettings

SLOW, FAST = StepSettings(20, 1, "days"), StepSettings(50, 1, "hours", "smooth")


def test_each_portal_sees_and_changes_only_its_own(db):
    def scenario(conn):
        create_named(conn, 1, NamedThrottleInput("leads", "Leads", SLOW), EPOCH)
        create_named(conn, 2, NamedThrottleInput("leads", "Other account's leads", FAST), EPOCH)
        create_named(conn, 1, NamedThrottleInput("alpha", "alpha", FAST), EPOCH)
        with pytest.raises(NamedThrottleTaken):
            create_named(conn, 1, NamedThrottleInput("leads", "Again", FAST), EPOCH)
        with pytest.raises(NamedThrottleNotFound):  # portal 1 cannot reach portal 2's throttles
            update_named(conn, 1, NamedThrottleInput("nope", "x", FAST), EPOCH)
        with pytest.raises(NamedThrottleNotFound):
            set_named_state(conn, 3, "leads", NamedThrottleState.INACTIVE, EPOCH)
        return named_sql.list_named(conn, 1), named_sql.list_named(conn, 2), named_sql.lookup(conn, {(2, "leads")})

    mine, theirs, found = db.transaction_sync(scenario)
    assert [(n.slug, n.display_name, step_of(n)) for n in mine] == [("alpha", "alpha", FAST), ("leads", "Leads", SLOW)]
    assert [(n.portal_id, step_of(n)) for n in theirs] == [(2, FAST)]
    assert list(found) == [(2, "leads")] and found[(2, "leads")].display_name == "Other account's leads"


def test_deleted_stays_known_until_created_again_and_inactive_is_listed_apart(db):
    def scenario(conn):
        create_named(conn, 1, NamedThrottleInput("a", "A", SLOW), EPOCH)
        create_named(conn, 1, NamedThrottleInput("b", "B", SLOW), EPOCH)
        set_named_state(conn, 1, "a", NamedThrottleState.DELETED, EPOCH)
        set_named_state(conn, 1, "b", NamedThrottleState.INACTIVE, EPOCH)
        with pytest.raises(NamedThrottleNotFound):  # a deleted one cannot be switched back on...
            set_named_state(conn, 1, "a", NamedThrottleState.ACTIVE, EPOCH)
        deleted = named_sql.get_named(conn, 1, "a")
        listed = [n.slug for n in named_sql.list_named(conn, 1)]
        active = [n.slug for n in named_sql.list_named(conn, 1, states=("active",))]
        create_named(conn, 1, NamedThrottleInput("a", "A again", FAST), EPOCH)  # ...only created again
        return deleted, listed, active, named_sql.get_named(conn, 1, "a")

    deleted, listed, active, again = db.transaction_sync(scenario)
    assert deleted is not None and deleted.state == "deleted"
    assert listed == ["b"] and active == []
    assert again is not None and again.active and step_of(again) == FAST and again.display_name == "A again"


def test_an_edit_reaches_the_queue_records_already_wait_in(db):
    queue_id = "queue:1:shared:leads"

    def scenario(conn):
        create_named(conn, 1, NamedThrottleInput("leads", "Leads", SLOW), EPOCH)
        queues_sql.upsert_queues(conn, [step_row(queue_id, 1, None, SLOW)], EPOCH)  # records arrived
        update_named(conn, 1, NamedThrottleInput("leads", "Leads", FAST), EPOCH)
        return queues_sql.get_queue(conn, queue_id)

    queue = db.transaction_sync(scenario)
    assert queue is not None and (queue.max_throughput, queue.time_unit, queue.mode) == (50, "hours", "smooth")
