"""Seed a running stack with a few queues through signed webhooks, for the admin tests.

Three queues of the stack's portal: ``slow`` (1 per hour: 1 of 3 released, 2 held),
``fast`` (100 per minute: both released) and ``shared`` (a shared queue at 1 per day: 1 of 2
released, 1 held). Returns once HubSpot (the sandbox) and the database agree on the 4 releases.
"""

from __future__ import annotations

import trio

from throttled import control
from throttled.testing import Stack, Step

SLOW = Step(workflow_id=101, action_id=7, limit=1, period=1, unit="hours")
FAST = Step(workflow_id=202, action_id=8, limit=100, period=1, unit="minutes", mode="smooth")
SHARED = Step(workflow_id=303, action_id=9, limit=1, period=1, unit="days", shared="promo")
ENROLLMENTS = {"slow": (SLOW, 3), "fast": (FAST, 2), "shared": (SHARED, 2)}
RELEASED = {"slow": 1, "fast": 2, "shared": 1}


async def seed_queues(stack: Stack, timeout_s: float = 15) -> dict[str, str]:
    """Post the enrollments and wait for the releases; returns name → queue id."""
    daemon = stack.daemons[0]
    for name, (step, n) in ENROLLMENTS.items():
        for i in range(n):
            response = await stack.hubspot.enroll(daemon.url, f"seed-{name}-{i}", stack.portal_id, step)
            assert response.status_code == 200, response.text
    ids = {name: step.queue_id(stack.portal_id) for name, (step, _) in ENROLLMENTS.items()}
    with trio.fail_after(timeout_s):
        while True:
            released = {o.queue.queue_id: o.counts.get("released_last_hour", 0)
                        for o in await daemon.db.transaction(control.list_queues)}
            if all(released.get(ids[name]) == n for name, n in RELEASED.items()):
                return ids
            await trio.sleep(0.05)
