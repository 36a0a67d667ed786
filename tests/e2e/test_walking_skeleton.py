"""End to end over real HTTP: signed webhooks in, throttled completions out at the sandbox."""

from __future__ import annotations

from tests.support.completions import settled_completions
from throttled.testing import Step, local_stack, max_per_window

STEP = Step(workflow_id=5001, action_id=7, limit=100, period=2, unit="seconds")


async def test_250_enrollments_released_100_per_2s_in_order(empty_database):
    async with local_stack(empty_database) as stack:
        ids = [f"ap-{stack.portal_id}-1-{i}" for i in range(250)]
        for callback_id in ids:  # one at a time: arrival order is the send order
            response = await stack.hubspot.enroll(stack.daemons[0].url, callback_id, stack.portal_id, STEP)
            assert response.status_code == 200, response.text
            assert response.json() == {"outputFields": {"hs_execution_state": "BLOCK", "hs_expiration_duration": "P7D"}}
        done = await settled_completions(stack, 250, timeout_s=30)
    completed = [c["callbackId"] for c in done]
    assert sorted(completed) == sorted(ids) and len(completed) == 250  # all, none twice
    assert completed == ids  # arrival order
    assert max_per_window([c["completedAt"] for c in done], 2.0) == 100
