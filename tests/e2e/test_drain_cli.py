"""`throttled queues drain --wait` releases a slow queue's backlog at once through a running daemon."""

from __future__ import annotations

import json
import os
import sys

import trio

from throttled.testing import Step, local_stack

SLOW = Step(workflow_id=71, action_id=1, limit=1, period=1, unit="hours")


async def test_drain_wait_ends_with_the_backlog_released(empty_database):
    async with local_stack(empty_database) as stack:
        ids = [f"ap-{stack.portal_id}-d-{i}" for i in range(20)]
        for cid in ids:
            assert (await stack.hubspot.enroll(stack.daemons[0].url, cid, stack.portal_id, SLOW)).status_code == 200
        await trio.sleep(0.5)
        assert len(await stack.hubspot.completions()) == 1  # 1 per hour: the rest wait
        env = {k: v for k, v in os.environ.items() if not k.startswith(("THROTTLED_", "HUBSPOT_"))}
        env["THROTTLED_DATABASE_URL"] = empty_database
        with trio.fail_after(30):
            result = await trio.run_process(
                [sys.executable, "-m", "throttled", "queues", "drain", SLOW.queue_id(stack.portal_id), "--wait", "--json"],
                env=env, capture_stdout=True, capture_stderr=True)
        completed = {c["callbackId"] for c in await stack.hubspot.completions()}
    shown = json.loads(result.stdout)
    assert shown["backlog"] == 0 and shown["counts"] == {"released": 20}
    assert completed == set(ids)
