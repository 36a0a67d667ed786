"""Named throttles from HubSpot's side: the editor's dropdown (a signed option fetch made by
the sandbox) lists the portal's active ones only; a step picking one waits at its settings,
and a step picking a switched-off, deleted or unknown one gets a clear outcome."""

from __future__ import annotations

import json
import time

import httpx
import sqlalchemy as sa
from structlog.testing import capture_logs

from throttled.control.named_throttles import create_named, set_named_state
from throttled.db import queues as queues_sql
from throttled.hubspot.signatures import SignedRequest, signed_headers
from throttled.ingest.inputs import NamedThrottleInput
from throttled.states import NamedThrottleState
from throttled.testing import Step, enrollment_body, local_stack
from throttled.throttle.step import StepSettings
from throttled.web.options_route import OPTIONS_PATH

LEADS = StepSettings(20, 1, "days", "smooth")
OTHER_PORTAL = 918_273


async def _seed(db, portal: int, now) -> None:
    def seed(conn):
        create_named(conn, portal, NamedThrottleInput("leads", "New leads", LEADS), now)
        create_named(conn, portal, NamedThrottleInput("old", "Old campaign", LEADS), now)
        create_named(conn, portal, NamedThrottleInput("gone", "Gone", LEADS), now)
        set_named_state(conn, portal, "old", NamedThrottleState.INACTIVE, now)
        set_named_state(conn, portal, "gone", NamedThrottleState.DELETED, now)
        create_named(conn, OTHER_PORTAL, NamedThrottleInput("theirs", "Another account's", LEADS), now)
    await db.transaction(seed)


async def test_the_dropdown_lists_this_portals_active_named_throttles_to_signed_fetches_only(empty_database):
    async with local_stack(empty_database) as stack:
        daemon, portal = stack.daemons[0], stack.portal_id
        await _seed(daemon.db, portal, daemon.web.clock.now())
        url = daemon.url + OPTIONS_PATH

        async def fetch(portal_id: int, q: str = "") -> httpx.Response:
            return await stack.hubspot.http.post(f"{stack.hubspot.sandbox_url}/_sandbox/options",
                                                 json={"url": url, "portal_id": portal_id, "q": q})
        mine, searched, none, theirs = (await fetch(portal), await fetch(portal, "LEA"), await fetch(portal, "zzz"),
                                        await fetch(OTHER_PORTAL))
        body = json.dumps({"origin": {"portalId": portal}}).encode()
        with capture_logs() as logs:
            unsigned = await stack.hubspot.http.post(url, content=body, headers={"Content-Type": "application/json"})
        now_ms = int(time.time() * 1000)  # fresh timestamps: refused for the signature, not for age
        forged_headers = signed_headers("not-the-client-secret", SignedRequest("POST", url, body), now_ms)
        forged = await stack.hubspot.http.post(url, content=body, headers=forged_headers)

        async def signed(payload: dict) -> httpx.Response:
            raw = json.dumps(payload).encode()
            headers = signed_headers(stack.hubspot.client_secret, SignedRequest("POST", url, raw), int(time.time() * 1000))
            return await stack.hubspot.http.post(url, content=raw, headers=headers)
        bad_query = await signed({"origin": {"portalId": portal}, "fetchOptions": {"q": 123}})
        top_level = await signed({"origin": {}, "portalId": portal})
        nul = await stack.hubspot.http.get(daemon.url + "/app/queues/%00")
        # A genuine signature over another portal's body cannot be replayed for this one.
        other = json.dumps({"origin": {"portalId": OTHER_PORTAL}}).encode()
        genuine = signed_headers(stack.hubspot.client_secret, SignedRequest("POST", url, body), now_ms)
        swapped = await stack.hubspot.http.post(url, content=other, headers=genuine)

    for answer in (mine, searched, none, theirs):
        assert answer.status_code == 200 and answer.json()["status"] == 200, answer.text
    assert mine.json()["body"] == {"searchable": True, "options": [
        {"label": "New leads", "value": "leads", "description": "20 per day, smooth"}]}
    assert [o["value"] for o in searched.json()["body"]["options"]] == ["leads"]
    assert none.json()["body"]["options"] == []
    assert [o["value"] for o in theirs.json()["body"]["options"]] == ["theirs"]
    for refused in (unsigned, forged, swapped):
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_signature", refused.text
    # A refusal leaves a trace for the operator ("the dropdown is empty" at 3 a.m.).
    assert [e["outcome"] for e in logs if e["event"] == "options.rejected"] == ["unauthorized"]
    assert bad_query.status_code == 400 and bad_query.json()["field"] == "fetchOptions.q"
    assert top_level.status_code == 200 and [o["value"] for o in top_level.json()["options"]] == ["leads"]
    assert nul.status_code == 404  # a NUL never reaches a query (it was a 500)


async def test_a_step_picking_a_named_throttle_waits_at_its_settings_or_is_told_why_not(empty_database):
    async with local_stack(empty_database) as stack:
        daemon, hubspot, portal = stack.daemons[0], stack.hubspot, stack.portal_id
        await _seed(daemon.db, portal, daemon.web.clock.now())

        async def enroll(n: int, name: str, **rate: str) -> dict:
            body = json.loads(enrollment_body(f"ap-{portal}-{n}-5-0", portal, Step(9400 + n, 5, 1, 1, "hours")))
            body["inputFields"] = {"shared_queue": name, **rate}
            response = await hubspot.post(daemon.url, json.dumps(body).encode())
            assert response.status_code == 200, response.text
            return response.json()["outputFields"]

        rate = {"max_throughput": "999", "time_period": "1", "time_unit": "seconds"}
        held = await enroll(1, "leads", **rate)  # the named settings win over the step's own rate
        answers = {name: await enroll(n, name) for n, name in enumerate(("old", "gone", "never-named"), start=2)}
        adhoc = await enroll(5, "adhoc", **rate)  # a name nobody created, with a rate: an ad-hoc shared throttle
        queue = await daemon.db.transaction(queues_sql.get_queue, f"queue:{portal}:shared:leads")
        stored = await daemon.db.transaction(lambda conn: conn.execute(
            sa.text("SELECT queue_id FROM action_executions ORDER BY queue_id")).scalars().all())

    assert held["hs_execution_state"] == "BLOCK" and adhoc["hs_execution_state"] == "BLOCK"
    assert queue is not None and (queue.max_throughput, queue.time_period, queue.time_unit, queue.mode) == (
        20, 1, "days", "smooth")
    assert answers == {
        "old": {"hs_execution_state": "FAIL_CONTINUE", "throttle_outcome": "throttle_inactive",
                "errorCode": "THROTTLE_INACTIVE"},
        "gone": {"hs_execution_state": "FAIL_CONTINUE", "throttle_outcome": "throttle_deleted",
                 "errorCode": "THROTTLE_DELETED"},
        "never-named": {"hs_execution_state": "FAIL_CONTINUE", "throttle_outcome": "throttle_unknown",
                        "errorCode": "THROTTLE_UNKNOWN"},
    }
    assert stored == [f"queue:{portal}:shared:adhoc", f"queue:{portal}:shared:leads"]  # the refused wrote nothing
