"""A database outage delays work and loses none: 503 + Retry-After while it lasts,
everything acknowledged is completed once it is back."""

from __future__ import annotations

import psycopg
import trio

from tests.support.outage import database_down
from throttled.db.engine import libpq_url
from throttled.testing import Step, local_stack

STEP = Step(workflow_id=77, action_id=3, limit=50, period=1, unit="seconds")


async def test_outage_gives_503_then_recovers_without_loss(empty_database):
    async with local_stack(empty_database) as stack:
        daemon, hubspot = stack.daemons[0], stack.hubspot
        before = [f"ap-{stack.portal_id}-before-{i}" for i in range(40)]
        for cid in before:
            assert (await hubspot.enroll(daemon.url, cid, stack.portal_id, STEP)).status_code == 200

        with database_down(empty_database):
            during = await hubspot.enroll(daemon.url, f"ap-{stack.portal_id}-during", stack.portal_id, STEP)
            assert during.status_code == 503
            assert int(during.headers["Retry-After"]) > 0
            assert (await hubspot.http.get(f"{daemon.url}/readyz")).status_code == 503
            await trio.sleep(1.5)  # the scheduler and portal senders hit the outage too

        after = [f"ap-{stack.portal_id}-after-{i}" for i in range(40)]
        with trio.fail_after(15):
            for cid in after:
                while (await hubspot.enroll(daemon.url, cid, stack.portal_id, STEP)).status_code == 503:
                    await trio.sleep(0.2)  # what HubSpot does: retry a 5xx later
        with trio.fail_after(20):
            while len(await hubspot.completions()) < 80:
                await trio.sleep(0.2)
        completed = [c["callbackId"] for c in await hubspot.completions()]

    assert sorted(completed) == sorted(before + after)  # all acknowledged ones, each once
    with psycopg.connect(libpq_url(empty_database)) as conn:
        rows = conn.execute("SELECT count(*) FROM action_executions WHERE callback_id LIKE '%during'").fetchone()[0]
    assert rows == 0  # the 503-answered webhook was not stored
