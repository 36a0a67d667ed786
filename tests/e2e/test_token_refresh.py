"""Access-token expiry mid-run, over real HTTP: the daemon refreshes once and carries on.

The sandbox is told to expire the portal's access tokens (as HubSpot does after 30 minutes,
protocol notes §6); the next completion is refused with 401, the daemon refreshes the token
once — single-flight, however many batches follow — and every held enrollment still
completes. The sandbox counts token-endpoint calls per portal, which is what is asserted.
"""

from __future__ import annotations

import time

import trio

from tests.support.completions import settled_completions
from throttled.db import executions as executions_sql
from throttled.db import portals as portals_sql
from throttled.testing import Step, local_stack

STEP = Step(workflow_id=8001, action_id=4, limit=20, period=1, unit="seconds")


async def _enroll(stack, ids: list[str], daemon: int = 0) -> None:
    for callback_id in ids:
        response = await stack.hubspot.enroll(stack.daemons[daemon].url, callback_id, stack.portal_id, STEP)
        assert response.status_code == 200, response.text


def _refused_401(stack) -> int:
    """Completion calls the sandbox refused with 401."""
    return sum(n for key, n in stack.sandbox_state.requests.items() if key.startswith("complete") and key.endswith(" 401"))


async def test_expired_token_is_refreshed_once_and_work_continues(empty_database):
    async with local_stack(empty_database) as stack:
        portal = stack.portal_id
        first = [f"ap-{portal}-8001-a{i}" for i in range(20)]
        await _enroll(stack, first)
        await settled_completions(stack, 20)
        calls_before = stack.sandbox_state.token_calls[portal]
        assert calls_before == 1  # the install's code exchange
        assert _refused_401(stack) == 0

        assert stack.sandbox_state.expire_access_tokens(portal, time.time()) >= 1
        second = [f"ap-{portal}-8001-b{i}" for i in range(60)]  # three windows, several batches
        await _enroll(stack, second)
        done = await settled_completions(stack, 80)

        assert [c["callbackId"] for c in done] == first + second
        assert stack.sandbox_state.token_calls[portal] == calls_before + 1
        assert _refused_401(stack) == 1  # one refused batch, retried with the new token
        assert stack.daemons[0].tokens.refreshes == 1


async def test_each_expiry_costs_one_refresh(empty_database):
    async with local_stack(empty_database) as stack:
        portal = stack.portal_id
        sent = 0
        for burst in range(3):
            expired = await stack.hubspot.http.post(
                f"{stack.hubspot.sandbox_url}/_sandbox/tokens/expire", json={"portal_id": portal}
            )
            assert expired.status_code == 200 and expired.json()["expired"] >= 1
            await _enroll(stack, [f"ap-{portal}-8001-{burst}-{i}" for i in range(30)])
            sent += 30
            await settled_completions(stack, sent)
            assert stack.sandbox_state.token_calls[portal] == 1 + (burst + 1)
        assert _refused_401(stack) == 3


async def test_two_daemons_refreshing_at_once_make_one_token_call(empty_database):
    async with local_stack(empty_database, daemons=2) as stack:
        portal = stack.portal_id
        stale = [await d.tokens.access_token(portal) for d in stack.daemons]
        assert stale[0] == stale[1]  # the second daemon read the installed token from the database
        stack.sandbox_state.expire_access_tokens(portal, time.time())
        fresh = []

        async def refresh(daemon):
            fresh.append(await daemon.tokens.after_unauthorized(portal, stale[0]))

        async with trio.open_nursery() as nursery:  # both got a 401 for the same token
            for daemon in stack.daemons:
                nursery.start_soon(refresh, daemon)
        assert fresh[0] == fresh[1] != stale[0]
        assert stack.sandbox_state.token_calls[portal] == 2  # install + one refresh

        # And the refreshed token works from both daemons.
        ids = [f"ap-{portal}-8001-c{i}" for i in range(40)]
        for n, callback_id in enumerate(ids):
            await _enroll(stack, [callback_id], daemon=n % 2)
        await settled_completions(stack, 40)
        assert stack.sandbox_state.token_calls[portal] == 2
        assert _refused_401(stack) == 0


async def test_revoked_refresh_token_marks_the_portal_revoked_and_keeps_the_work(empty_database):
    async with local_stack(empty_database) as stack:
        portal, db = stack.portal_id, stack.daemons[0].db
        assert stack.sandbox_state.revoke_refresh_tokens(portal) == 1  # the app was uninstalled
        stack.sandbox_state.expire_access_tokens(portal, time.time())
        await _enroll(stack, [f"ap-{portal}-8001-r{i}" for i in range(5)])
        with trio.fail_after(10):
            while (await db.transaction(portals_sql.get_portal, portal)).status != "revoked":
                await trio.sleep(0.05)
        counts = await db.transaction(executions_sql.execution_counts, [STEP.queue_id(portal)])
        assert await stack.hubspot.completions() == []
        assert stack.sandbox_state.requests["token 400"] == 1  # one refused refresh, not a retry loop
    assert sum(counts[STEP.queue_id(portal)].get(s, 0) for s in ("pending", "releasing")) == 5


async def test_a_token_that_dies_during_a_429_wait_is_refreshed_again(empty_database):
    # Found by the reliability suite: 401 → refresh → 429 → wait → 401 gave the batch up
    # ("refresh once"), and three such batches put the queues on hold for half an hour.
    async with local_stack(empty_database, sandbox_config={"rate_limit_interval_s": 2.0}) as stack:
        portal, state = stack.portal_id, stack.sandbox_state
        state.set_faults({"token_lifetime_s": 1.0, "rate_limit_storm": 1})  # new tokens live 1 s
        state.expire_access_tokens(portal, time.time())
        ids = [f"ap-{portal}-8001-w{i}" for i in range(5)]
        await _enroll(stack, ids)
        done = await settled_completions(stack, 5, timeout_s=20)
        rows = await stack.daemons[0].db.transaction(executions_sql.execution_counts)

    assert sorted(c["callbackId"] for c in done) == sorted(ids)
    assert state.token_calls[portal] == 3  # install, after the first 401, after the wait
    assert _refused_401(stack) == 2
    assert rows[STEP.queue_id(portal)] == {"released": 5}
