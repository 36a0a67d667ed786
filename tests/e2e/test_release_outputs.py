"""The outputs of a release, as later workflow steps see them at the sandbox (HubSpot's side).

Every completion carries ``held_seconds``, ``released_at`` and ``position_on_arrival`` beside
``hs_execution_state`` (``hubspot/outputs.py``); the position is the record's place in line
when it arrived — behind pending records of the same or a higher priority, ahead of lower ones.
"""

from __future__ import annotations

import datetime as dt
import json

from tests.support.completions import settled_completions
from throttled.control.queues import drain_queue
from throttled.testing import Step, enrollment_body, local_stack

STEP = Step(workflow_id=9301, action_id=4, limit=1, period=1, unit="hours")


def _body(callback_id: str, portal_id: int, priority: str | None = None) -> bytes:
    body = json.loads(enrollment_body(callback_id, portal_id, STEP))
    if priority is not None:
        body["inputFields"]["priority"] = priority
    return json.dumps(body).encode()


async def test_every_completion_says_how_long_when_and_from_where_in_line(empty_database):
    async with local_stack(empty_database) as stack:
        daemon, hubspot, portal = stack.daemons[0], stack.hubspot, stack.portal_id
        first = f"ap-{portal}-1-4-0"
        assert (await hubspot.post(daemon.url, _body(first, portal))).status_code == 200
        await settled_completions(stack, ids=[first], timeout_s=10)  # 1 per hour: the window is now full
        waiting = {f"ap-{portal}-2-4-0": None, f"ap-{portal}-3-4-0": None, f"ap-{portal}-4-4-0": "high"}
        for callback_id, priority in waiting.items():
            assert (await hubspot.post(daemon.url, _body(callback_id, portal, priority))).status_code == 200
        queue_id = STEP.queue_id(portal)
        await daemon.db.transaction(drain_queue, queue_id, daemon.web.clock.now())  # let them all go now
        done = {c["callbackId"]: c["outputFields"] for c in await settled_completions(stack, ids=[first, *waiting])}

    assert set(done) == {first, *waiting}
    for fields in done.values():
        assert fields["hs_execution_state"] == "SUCCESS"
        assert 0 <= int(fields["held_seconds"]) < 60
        released = dt.datetime.fromisoformat(fields["released_at"].replace("Z", "+00:00"))
        assert released.tzinfo is not None and abs(released - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    positions = {cid: done[cid]["position_on_arrival"] for cid in done}
    # The first went straight out; the next two queued in arrival order; HIGH went ahead of both.
    assert positions == {first: "1", f"ap-{portal}-2-4-0": "1", f"ap-{portal}-3-4-0": "2", f"ap-{portal}-4-4-0": "1"}
