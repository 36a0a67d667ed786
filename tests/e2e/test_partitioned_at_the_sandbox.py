"""Per-owner limits at HubSpot's side: the window bound checked per owner on the sandbox's own
completion times, through the real endpoint, the daemon and the callbacks API."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
import trio

from tests.support.completions import settled_completions
from throttled.testing import Step, enrollment_body, local_stack, max_per_window

PERIOD_S = 2


@pytest.mark.parametrize(("owners", "limit", "each"), [(30, 2, 3), (8, 1, 3)])
async def test_each_owner_gets_at_most_its_limit_per_window_at_hubspot(empty_database, owners, limit, each):
    step = Step(workflow_id=9500 + owners, action_id=3, limit=limit, period=PERIOD_S, unit="seconds")
    async with local_stack(empty_database) as stack:
        daemon, portal = stack.daemons[0], stack.portal_id
        plan = {f"ap-{portal}-{n}{o:03d}-3-0": f"owner-{o}" for n in range(1, each + 1) for o in range(owners)}

        async def enroll(callback_id: str, owner: str) -> None:
            body = json.loads(enrollment_body(callback_id, portal, step))
            body["inputFields"]["partition_key"] = owner
            response = await stack.hubspot.post(daemon.url, json.dumps(body).encode())
            assert response.status_code == 200 and response.json()["outputFields"]["hs_execution_state"] == "BLOCK"

        async with trio.open_nursery() as nursery:
            for callback_id, owner in plan.items():
                nursery.start_soon(enroll, callback_id, owner)
        done = await settled_completions(stack, ids=list(plan), timeout_s=30)

    times: dict[str, list[float]] = defaultdict(list)
    for c in done:
        times[plan[c["callbackId"]]].append(c["completedAt"])
    assert sorted(c["callbackId"] for c in done) == sorted(plan)  # each once
    worst = {owner: max_per_window(t, PERIOD_S) for owner, t in times.items()}
    assert max(worst.values()) == limit, worst  # per owner: exactly the limit at worst, never more
    # The limit is per owner, not per step: the step as a whole went far beyond it in one window.
    assert max_per_window([c["completedAt"] for c in done], PERIOD_S) >= owners
