"""End to end over real HTTP: signed webhooks in, throttled completions out at the sandbox."""

from __future__ import annotations

from tests.support.blocks import held_for_s
from tests.support.completions import settled_completions
from throttled import control
from throttled.db.time import database_now
from throttled.testing import Step, local_stack, max_per_window

STEP = Step(workflow_id=5001, action_id=7, limit=100, period=2, unit="seconds")


async def test_250_enrollments_released_100_per_2s_in_order(empty_database):
    async with local_stack(empty_database) as stack:
        daemon, queue_id = stack.daemons[0], STEP.queue_id(stack.portal_id)
        ids = [f"ap-{stack.portal_id}-1-{i}" for i in range(250)]
        for n, callback_id in enumerate(ids):  # one at a time: arrival order is the send order
            response = await stack.hubspot.enroll(daemon.url, callback_id, stack.portal_id, STEP)
            assert response.status_code == 200, response.text
            assert held_for_s(response.json()) == 7 * 86400  # the shortest block covers a wait of seconds
            if n == 0:
                # Paused while the rest arrive, so the window is full at every step however slowly
                # a loaded machine sends them (once, the sender was slower than the rate: 44 per 2 s).
                await daemon.db.transaction(lambda conn: control.pause_queue(conn, queue_id, database_now(conn)))
        await daemon.db.transaction(lambda conn: control.resume_queue(conn, queue_id, database_now(conn)))
        done = await settled_completions(stack, 250, timeout_s=30)
    completed = [c["callbackId"] for c in done]
    assert sorted(completed) == sorted(ids) and len(completed) == 250  # all, none twice
    assert completed == ids  # arrival order
    assert max_per_window([c["completedAt"] for c in done], 2.0) == 100
