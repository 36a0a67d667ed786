"""Which step and which execution a webhook is, through the real endpoint (field-faults
issue, items 5 and 7): a webhook HubSpot sends again after we completed its callback is
answered with what is true (done), and two throttle steps of one workflow without
``context.actionId`` keep their own queues and rates."""

from __future__ import annotations

import json

from structlog.testing import capture_logs

from tests.support.blocks import rest_of_block
from tests.support.completions import settled_completions
from tests.support.waiting import wait_until
from throttled.db import queues as queues_sql
from throttled.testing import Step, enrollment_body, local_stack

STEP = Step(workflow_id=9201, action_id=1, limit=1, period=1, unit="hours")


async def test_a_webhook_sent_again_is_blocked_before_its_release_and_done_after(empty_database):
    async with local_stack(empty_database) as stack:
        daemon, hubspot, portal = stack.daemons[0], stack.hubspot, stack.portal_id
        first, second = f"ap-{portal}-9201-1-0", f"ap-{portal}-9202-1-0"
        for callback_id in (first, second):  # 1 per hour: the first goes out, the second waits
            assert (await hubspot.enroll(daemon.url, callback_id, portal, STEP)).status_code == 200
        done = await settled_completions(stack, ids=[first], timeout_s=10)

        again_released = await hubspot.post(daemon.url, enrollment_body(first, portal, STEP))
        again_held = await hubspot.post(daemon.url, enrollment_body(second, portal, STEP))
        counts = await daemon.db.transaction(lambda conn: conn.exec_driver_sql(
            "SELECT callback_id, state FROM action_executions ORDER BY callback_id").all())

    completion = next(c for c in done if c["callbackId"] == first)
    assert again_released.status_code == 200
    # The same outputs as the completion said: done, held this long, released then, first in line.
    assert again_released.json()["outputFields"] == completion["outputFields"]
    fields = completion["outputFields"]
    assert fields["hs_execution_state"] == "SUCCESS" and fields["position_on_arrival"] == "1"
    assert 0 <= int(fields["held_seconds"]) < 10 and fields["released_at"].endswith("Z")
    assert again_held.status_code == 200
    assert rest_of_block(again_held.json(), 7 * 86400)  # the rest of its first block, not a new one
    assert [tuple(r) for r in counts] == [(first, "released"), (second, "pending")]  # each stored once


def _without_action_id(callback_id: str, portal: int, step: Step) -> bytes:
    body = json.loads(enrollment_body(callback_id, portal, step))
    del body["context"]["actionId"]  # HubSpot's documented sample has none
    body["origin"]["actionDefinitionId"] = 777
    return json.dumps(body).encode()


async def test_two_steps_without_action_id_keep_their_own_queues_and_rates(empty_database):
    hourly = Step(workflow_id=700, action_id=0, limit=1, period=1, unit="hours")
    fast = Step(workflow_id=700, action_id=0, limit=100, period=1, unit="seconds")
    async with local_stack(empty_database) as stack:
        daemon, portal = stack.daemons[0], stack.portal_id
        with capture_logs() as logs:
            for callback_id, step in [(f"ap-{portal}-1-3-0", hourly), (f"ap-{portal}-2-4-0", fast),
                                      (f"ap-{portal}-3-3-0", hourly),
                                      ("opaque-1", hourly), ("opaque-2", fast), ("opaque-3", hourly)]:
                response = await stack.hubspot.post(daemon.url, _without_action_id(callback_id, portal, step))
                assert response.status_code == 200, response.text
        queues = {q.queue_id: (q.max_throughput, q.time_unit) for q in await daemon.db.transaction(queues_sql.list_queues)}

    by_callback = {f"queue:{portal}:700:3:0": (1, "hours"), f"queue:{portal}:700:4:0": (100, "seconds")}
    assert {q: r for q, r in queues.items() if q in by_callback} == by_callback
    by_settings = {q: r for q, r in queues.items() if q.startswith(f"queue:{portal}:700:777:")}
    assert sorted(by_settings.values()) == [(1, "hours"), (100, "seconds")]  # two queues, not one flipping
    unidentified = [e for e in logs if e["event"] == "webhook.step_unidentified"]
    assert len(unidentified) == 1 and unidentified[0]["workflow_id"] == 700  # one line, not one per webhook


async def test_a_webhook_sent_again_for_a_refused_callback_is_answered_fail_continue(empty_database):
    # A new-user trial: a callback HubSpot refused for good (failed) was held again with
    # BLOCK P7D when its webhook came again — a hold nothing would ever release.
    step = Step(workflow_id=9203, action_id=1, limit=10, period=1, unit="seconds")
    async with local_stack(empty_database) as stack:
        daemon, hubspot, portal = stack.daemons[0], stack.hubspot, stack.portal_id
        poisoned = f"ap-{portal}-9203-1-0"
        stack.sandbox_state.set_faults({"poison_callback_ids": [poisoned]})
        assert (await hubspot.enroll(daemon.url, poisoned, portal, step)).status_code == 200

        async def failed():
            return await daemon.db.transaction(lambda conn: conn.exec_driver_sql(
                "SELECT state FROM action_executions WHERE callback_id = %(id)s", {"id": poisoned}).scalar()) == "failed"

        await wait_until(failed, timeout_s=10)
        again = await hubspot.post(daemon.url, enrollment_body(poisoned, portal, step))
    assert again.status_code == 200
    assert again.json()["outputFields"] == {"hs_execution_state": "FAIL_CONTINUE", "throttle_outcome": "failed",
                                            "errorCode": "COMPLETION_REFUSED"}
