"""HubSpot's bad days, over real loopback HTTP: the daemon against the sandbox's faults.

Each test starts a real stack (``local_stack``: sandbox plus daemon(s) on PostgreSQL), turns
on a fault at the sandbox (``POST /_sandbox/faults``, ``/_sandbox/tokens/…``) and asserts on
both sides of the wire: what the sandbox counted (``/_sandbox/stats``: requests by route and
path, token calls, 429s, ``max_in_window``; ``/_sandbox/completions``) and what the database
holds (execution states and attempts, queue holds, portal status). Facts about HubSpot come
from ``shared/docs/hubspot-protocol.md`` §5–§8. Timings are shrunk with settings overrides
(leases, holds, budgets) and, for 5xx backoff, a patched retry schedule.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import time

import pytest
import sqlalchemy as sa
import trio

from tests.support.completions import settled_completions
from tests.support.waiting import wait_until
from throttled import control
from throttled.db import portals as portals_sql
from throttled.db import queues as queues_sql
from throttled.hubspot import send_policy
from throttled.hubspot.answers import Action
from throttled.hubspot.errors import HubSpotRejected
from throttled.hubspot.registration import action_definition, register
from throttled.sandbox import SandboxConfig, serve_sandbox
from throttled.testing import Step, local_stack
from throttled.throttle.job import ensure_throttle_job

UTC = dt.UTC
COMPLETE_PREFIXES = ("complete_batch ", "complete_single ")


# -- helpers -------------------------------------------------------------------------------


async def _faults(stack, **changes) -> dict:
    response = await stack.hubspot.http.post(f"{stack.hubspot.sandbox_url}/_sandbox/faults", json=changes)
    assert response.status_code == 200, response.text
    return response.json()


async def _clear_faults(stack) -> None:
    response = await stack.hubspot.http.delete(f"{stack.hubspot.sandbox_url}/_sandbox/faults")
    assert response.status_code == 200


async def _tokens(stack, action: str) -> int:
    """``action`` = ``expire`` or ``revoke`` the portal's tokens at the sandbox; how many."""
    response = await stack.hubspot.http.post(f"{stack.hubspot.sandbox_url}/_sandbox/tokens/{action}",
                                             json={"portal_id": stack.portal_id})
    assert response.status_code == 200, response.text
    return response.json()["expired" if action == "expire" else "revoked"]


async def _stats(stack) -> dict:
    response = await stack.hubspot.http.get(f"{stack.hubspot.sandbox_url}/_sandbox/stats")
    response.raise_for_status()
    return response.json()


def _complete_calls(stats: dict, status: int | None = None) -> int:
    """Callback-completion requests the sandbox answered (with ``status`` when given)."""
    return sum(n for key, n in stats["requests"].items()
               if key.startswith(COMPLETE_PREFIXES) and (status is None or key.endswith(f" {status}")))


async def _enroll(stack, step: Step, ids: list[str]) -> None:
    for callback_id in ids:
        response = await stack.hubspot.enroll(stack.daemons[0].url, callback_id, stack.portal_id, step)
        assert response.status_code == 200, response.text


async def _enroll_as_one_batch(stack, step: Step, ids: list[str]) -> None:
    """Enroll ``ids`` into a paused queue, then resume it: one worker run releases them all
    at once, so the daemon sends them as one batch (``step.limit`` must be ≥ len(ids))."""
    db, queue_id, now = stack.daemons[0].db, step.queue_id(stack.portal_id), dt.datetime.now(UTC)

    def paused(conn):
        queues_sql.upsert_queues(conn, [queues_sql.QueueSettings(
            queue_id, stack.portal_id, step.action_id, step.limit, step.period, step.unit)], now)
        queues_sql.set_state(conn, queue_id, "paused", now)

    await db.transaction(paused)
    await _enroll(stack, step, ids)
    await db.transaction(control.resume_queue, queue_id, dt.datetime.now(UTC))


def _assert_each_once(done: list[dict], ids: list[str]) -> None:
    counts = collections.Counter(c["callbackId"] for c in done)
    assert [cid for cid, n in counts.items() if n > 1] == []
    assert sorted(counts) == sorted(ids)


async def _rows(db, ids: list[str]) -> dict[str, tuple[str, int, str | None]]:
    """callback id → (state, attempts, last_failure_reason)."""
    def read(conn):
        return conn.execute(sa.text(
            "SELECT callback_id, state, attempts, last_failure_reason FROM action_executions "
            "WHERE callback_id = ANY(:ids)"), {"ids": ids}).all()
    return {r.callback_id: (r.state, r.attempts, r.last_failure_reason) for r in await db.transaction(read)}


async def _states(db, ids: list[str]) -> dict[str, int]:
    return dict(collections.Counter(state for state, _, _ in (await _rows(db, ids)).values()))


# -- 1. a thundering herd of 401s -----------------------------------------------------------


@pytest.mark.parametrize("daemons", [1, 2])
async def test_a_hundred_concurrent_401s_cost_one_token_call(empty_database, daemons):
    async with local_stack(empty_database, daemons=daemons, overrides={"portal_budget": 300}) as stack:
        portal = stack.portal_id
        stale = await stack.daemons[0].tokens.access_token(portal)
        assert all([await d.tokens.access_token(portal) == stale for d in stack.daemons])
        calls_before = (await _stats(stack))["token_calls"][str(portal)]
        assert calls_before == 1  # the install's code exchange
        assert await _tokens(stack, "expire") >= 1
        used: dict[str, str] = {}

        async def complete(n: int) -> None:
            # What a portal-queue send does: a 401 for the stale token, then the shared refresh.
            daemon = stack.daemons[n % daemons]
            callback_id = f"ap-{portal}-401-{n}"
            refused = await daemon.tokens.client.complete(stale, [callback_id], portal)
            assert refused.action is Action.REFRESH
            fresh = await daemon.tokens.after_unauthorized(portal, stale)
            await daemon.tokens.client.complete(fresh, [callback_id], portal)
            used[callback_id] = fresh

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for n in range(100):
                    nursery.start_soon(complete, n)
        stats = await _stats(stack)
    assert stats["token_calls"][str(portal)] == calls_before + 1
    assert stats["requests"]["complete_single 401"] == 100
    assert stats["requests"]["complete_single 204"] == 100 and stats["completions"] == 100
    assert len(set(used.values())) == 1 and stale not in used.values()
    assert sum(d.tokens.refreshes for d in stack.daemons) == 1


# -- 2. an uninstalled app -------------------------------------------------------------------


async def test_revoked_refresh_token_holds_the_portal_until_reinstalled(empty_database):
    steps = [Step(workflow_id=9002, action_id=a, limit=10, period=1, unit="seconds") for a in (1, 2, 3)]
    async with local_stack(empty_database) as stack:
        portal, db = stack.portal_id, stack.daemons[0].db
        by_step = [[f"ap-{portal}-9002-{step.action_id}-{i}" for i in range(10)] for step in steps]
        ids = [cid for step_ids in by_step for cid in step_ids]
        assert await _tokens(stack, "revoke") == 1  # the app was uninstalled …
        await _tokens(stack, "expire")  # … and the access token ran out
        for step, step_ids in zip(steps, by_step, strict=True):
            await _enroll(stack, step, step_ids)

        async def revoked():
            return (await db.transaction(portals_sql.get_portal, portal)).status == "revoked"

        await wait_until(revoked)
        await trio.sleep(1.0)  # the queues' jobs see the portal and hold
        held = await _stats(stack)
        await trio.sleep(1.0)
        assert await _stats(stack) == held  # nothing more sent: no completion, no refresh
        assert held["requests"].get("token 400") == 1  # one refused refresh, not a retry loop
        assert _complete_calls(held, 204) == 0 and await stack.hubspot.completions() == []
        states = await _states(db, ids)
        assert set(states) <= {"pending", "releasing"} and sum(states.values()) == 30  # none lost

        assert await stack.hubspot.install(stack.daemons[0].url, portal) == portal  # re-install
        assert (await db.transaction(portals_sql.get_portal, portal)).status == "active"
        done = await settled_completions(stack, 30, timeout_s=10)
        _assert_each_once(done, ids)
        assert await _states(db, ids) == {"released": 30}


# -- 3. a 429 storm --------------------------------------------------------------------------


async def test_429_storm_spends_no_attempt_and_the_budget_holds(empty_database):
    budget = 5
    # Ten smooth steps of 5/s: a release every 200 ms each, so many small batches want out.
    steps = [Step(workflow_id=9003, action_id=a, limit=5, period=1, unit="seconds", mode="smooth")
             for a in range(1, 11)]
    async with local_stack(
        empty_database, sandbox_config={"rate_limit_interval_s": 1.0},  # 429s say "wait 1 s"
        overrides={"portal_budget": budget, "portal_budget_window_s": 1.0},
    ) as stack:
        portal, db = stack.portal_id, stack.daemons[0].db
        ids = [f"ap-{portal}-9003-{s.action_id}-{i}" for i in range(15) for s in steps]
        for n, callback_id in enumerate(ids):
            await _enroll(stack, steps[n % len(steps)], [callback_id])
        await settled_completions(stack, 20)
        await _faults(stack, rate_limit_storm=3)  # mid-stream: the next three calls get 429
        done = await settled_completions(stack, len(ids), timeout_s=30)
        stats = await _stats(stack)
        rows = await _rows(db, ids)
        budget_waits = stack.daemons[0].tokens.client.budget.waits
    _assert_each_once(done, ids)
    assert stats["rate_limited"] == 3 and _complete_calls(stats, 429) == 3  # the storm, no more
    assert {state for state, _, _ in rows.values()} == {"released"}
    assert {attempts for _, attempts, _ in rows.values()} == {1}  # a 429 spends no attempt
    assert 1 <= stats["max_in_window"][str(portal)] <= budget  # as HubSpot counted it
    assert budget_waits > 0  # the budget (and the 429s' pauses) really held calls back


# -- 4. a poisoned callback in a batch -------------------------------------------------------


async def test_a_poisoned_callback_fails_alone_after_a_few_calls(empty_database):
    step = Step(workflow_id=9004, action_id=1, limit=10, period=1, unit="seconds")
    async with local_stack(empty_database) as stack:
        portal, db = stack.portal_id, stack.daemons[0].db
        ids = [f"ap-{portal}-9004-{i}" for i in range(10)]
        await _faults(stack, poison_callback_ids=[ids[6]])
        await _enroll_as_one_batch(stack, step, ids)
        done = await settled_completions(stack, 9)
        stats = await _stats(stack)
        rows = await _rows(db, ids)
    _assert_each_once(done, ids[:6] + ids[7:])
    state, attempts, reason = rows.pop(ids[6])
    assert state == "failed" and attempts == 1
    assert "400" in reason and "could not be completed" in reason
    assert {r[:2] for r in rows.values()} == {("released", 1)}
    # Halving: [0-9] ✗ → [0-4] ✓, [5-9] ✗ → [5,6] ✗ → [5] ✓, [6] ✗ ; [7-9] ✓ — 7 calls, not 10.
    assert _complete_calls(stats) == 7 <= 2 * math.ceil(math.log2(10)) + 1
    assert stats["requests"]["complete_batch 400"] == 3 and stats["requests"]["complete_single 400"] == 1
    assert stats["requests"]["complete_batch 204"] == 2 and stats["requests"]["complete_single 204"] == 1


async def test_a_batch_split_longer_than_its_lease_sends_no_callback_twice(empty_database):
    # Found by the reliability suite: halving a batch over a slow HubSpot took longer than the
    # release lease; the worker put the rest back in line and they went out a second time.
    step = Step(workflow_id=9014, action_id=1, limit=40, period=1, unit="seconds")
    overrides = {"release_lease_s": 3.0, "hubspot_timeout_s": 0.5, "poll_interval_s": 0.2}
    async with local_stack(empty_database, overrides=overrides) as stack:
        portal, db = stack.portal_id, stack.daemons[0].db
        ids = [f"ap-{portal}-9014-{i}" for i in range(32)]
        poisoned = ids[3::8]  # four bad ids: ~28 calls of 0.4 s, far past a 3 s lease
        await _faults(stack, poison_callback_ids=poisoned, latency_s=0.4)
        await _enroll_as_one_batch(stack, step, ids)
        done = await settled_completions(stack, len(ids) - len(poisoned), timeout_s=30)
        async def settled():
            rows = await _rows(db, ids)
            return rows if all(state != "releasing" for state, *_ in rows.values()) else None

        rows = await wait_until(settled, timeout_s=15)
        repeats = dict(stack.sandbox_state.repeats)
    _assert_each_once(done, [i for i in ids if i not in poisoned])
    assert repeats == {}  # no completed callback was ever sent again
    assert {rows[i][0] for i in poisoned} == {"failed"}
    assert {rows[i][0] for i in ids if i not in poisoned} == {"released"}


async def test_a_callback_handed_over_again_while_its_copy_waits_goes_out_once(empty_database):
    # Found by the reliability suite: while a portal waited out 429s, releases queued behind
    # the stuck batch outlived their lease; the worker handed them over again, and both
    # copies went out (HubSpot then saw each callback twice).
    step = Step(workflow_id=9015, action_id=1, limit=100, period=1, unit="seconds")
    overrides = {"release_lease_s": 3.0, "hubspot_timeout_s": 0.5, "poll_interval_s": 0.2}
    async with local_stack(empty_database, overrides=overrides, sandbox_config={"rate_limit_interval_s": 2.0}) as stack:
        portal, db = stack.portal_id, stack.daemons[0].db
        first = [f"ap-{portal}-9015-a{i}" for i in range(5)]
        behind = [f"ap-{portal}-9015-b{i}" for i in range(5)]
        await _faults(stack, rate_limit_storm=3)  # the first batch waits 3 × 2 s
        await _enroll(stack, step, first)
        await trio.sleep(0.5)
        await _enroll(stack, step, behind)  # queued behind it, leased for 3 s
        done = await settled_completions(stack, 10, timeout_s=30)
        async def all_released():
            return all(state == "released" for state, *_ in (await _rows(db, first + behind)).values())

        await wait_until(all_released, timeout_s=15)
        repeats = dict(stack.sandbox_state.repeats)
    _assert_each_once(done, first + behind)
    assert repeats == {}


# -- 5. a callback HubSpot already completed -------------------------------------------------


async def test_an_already_completed_callback_ends_released_without_retry(empty_database):
    step = Step(workflow_id=9005, action_id=1, limit=10, period=1, unit="seconds")
    async with local_stack(empty_database) as stack:
        portal, db = stack.portal_id, stack.daemons[0].db
        ids = [f"ap-{portal}-9005-{i}" for i in range(5)]
        token = await stack.daemons[0].tokens.access_token(portal)
        early = await stack.hubspot.http.post(  # completed at HubSpot by someone else first
            f"{stack.hubspot.sandbox_url}/automation/v4/actions/callbacks/{ids[0]}/complete",
            json={"outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": {}},
            headers={"Authorization": f"Bearer {token}"})
        assert early.status_code == 204
        await _enroll_as_one_batch(stack, step, ids)
        done = await settled_completions(stack, 5)
        _assert_each_once(done, ids)
        assert await _rows(db, ids) == dict.fromkeys(ids, ("released", 1, None))
        stats = await _stats(stack)
        assert stats["requests"]["complete_single 400"] == 1  # asked once, never retried

        # A lost acknowledgement: the row says "not sent", so the daemon completes it again.
        def forget_release(conn):
            conn.execute(sa.text("UPDATE action_executions SET state = 'pending', released_at = NULL "
                                 "WHERE callback_id = :id"), {"id": ids[3]})
            ensure_throttle_job(conn, step.queue_id(portal), portal, step.action_id, dt.datetime.now(UTC))

        registry = stack.daemons[0].metrics.registry
        writes = registry.get_sample_value("throttled_release_ack_write_seconds_count")
        await db.transaction(forget_release)
        await wait_until(lambda: _released(db, ids[3]))
        await trio.sleep(0.5)
        again = await _stats(stack)
        assert (await _rows(db, [ids[3]]))[ids[3]][:2] == ("released", 2)
        # "Already completed" is an acknowledgement too: its write is timed like a success's.
        await wait_until(lambda: registry.get_sample_value("throttled_release_ack_write_seconds_count") == writes + 1,
                         what="the 'already completed' acknowledgement's write timed")
    assert again["requests"]["complete_single 400"] == 2 and again["completions"] == 5
    assert _complete_calls(again) == _complete_calls(stats) + 1


async def _released(db, callback_id: str) -> bool:
    return (await _rows(db, [callback_id]))[callback_id][0] == "released"


# -- 6. HubSpot answering 5xx ----------------------------------------------------------------


@pytest.fixture
def quick_retries(monkeypatch):
    """5xx retries after 0.05, 0.1 and 0.2 s instead of 1, 2 and 4 s (same count)."""
    monkeypatch.setattr(send_policy, "RETRY_DELAYS", (0.05, 0.1, 0.2))


async def test_thirty_percent_5xx_every_callback_completes_once(empty_database, quick_retries):
    steps = [Step(workflow_id=9006, action_id=a, limit=20, period=1, unit="seconds") for a in (1, 2)]
    async with local_stack(empty_database, overrides={"release_lease_s": 3.0, "hubspot_timeout_s": 0.5}) as stack:
        portal, db = stack.portal_id, stack.daemons[0].db
        await _faults(stack, error_rate=0.3, seed=20260302)
        ids = [f"ap-{portal}-9006-{i}" for i in range(80)]
        for n, callback_id in enumerate(ids):
            await _enroll(stack, steps[n % 2], [callback_id])
        done = await settled_completions(stack, 80, timeout_s=30)
        stats = await _stats(stack)
        rows = await _rows(db, ids)
    _assert_each_once(done, ids)
    assert _complete_calls(stats, 503) > 0  # the fault really bit
    assert {state for state, _, _ in rows.values()} == {"released"}
    retried = [r for r in rows.values() if r[1] > 1]
    assert retried and all("503" in reason for _, _, reason in retried)


async def test_hubspot_down_puts_the_queue_on_hold_then_it_completes(empty_database, quick_retries):
    step = Step(workflow_id=9007, action_id=1, limit=10, period=1, unit="seconds")
    overrides = {"hold_after": 2, "hold_s": 2.0, "release_lease_s": 3.0, "hubspot_timeout_s": 0.5}
    async with local_stack(empty_database, overrides=overrides) as stack:
        portal, db, queue_id = stack.portal_id, stack.daemons[0].db, step.queue_id(stack.portal_id)
        ids = [f"ap-{portal}-9007-{i}" for i in range(10)]
        await _faults(stack, error_rate=1.0)
        await _enroll_as_one_batch(stack, step, ids)

        async def on_hold():
            queue = await db.transaction(queues_sql.get_queue, queue_id)
            return queue if queue.state == "on_hold" else None

        queue = await wait_until(on_hold)
        held_at, hold_ends = time.time(), queue.on_hold_until.timestamp()
        stats = await _stats(stack)
        # Two batches given up (4 calls each: first try and 3 retries), then the hold.
        assert _complete_calls(stats, 503) == 8 and _complete_calls(stats) == 8
        assert queue.holds == 1 and "503" in queue.last_failure_reason
        assert 1.0 < hold_ends - held_at <= 2.0
        assert await stack.hubspot.completions() == []
        states = await _states(db, ids)
        assert set(states) <= {"pending", "releasing"} and sum(states.values()) == 10  # none lost

        await _clear_faults(stack)  # HubSpot is back; the hold runs out by itself
        done = await settled_completions(stack, 10, timeout_s=10)
        queue = await db.transaction(queues_sql.get_queue, queue_id)
    _assert_each_once(done, ids)
    assert min(c["completedAt"] for c in done) >= hold_ends  # nothing went out during the hold
    assert (queue.state, queue.consecutive_failures, queue.holds, queue.on_hold_until) == ("active", 0, 0, None)


async def test_resume_lifts_a_long_hold_at_once(empty_database, quick_retries):
    step = Step(workflow_id=9008, action_id=1, limit=10, period=1, unit="seconds")
    overrides = {"hold_after": 1, "hold_s": 3600.0}
    async with local_stack(empty_database, overrides=overrides) as stack:
        portal, db, queue_id = stack.portal_id, stack.daemons[0].db, step.queue_id(stack.portal_id)
        ids = [f"ap-{portal}-9008-{i}" for i in range(10)]
        await _faults(stack, error_rate=1.0)
        await _enroll_as_one_batch(stack, step, ids)

        async def on_hold():
            return (await db.transaction(queues_sql.get_queue, queue_id)).state == "on_hold"

        await wait_until(on_hold)
        await _clear_faults(stack)
        await trio.sleep(0.5)
        assert await stack.hubspot.completions() == []  # held: an hour to go
        await db.transaction(control.resume_queue, queue_id, dt.datetime.now(UTC))
        # The given-up releases wait out their lease (default 120 s) unless something puts
        # them back: the resume must, or a resumed queue would still sit for two minutes.
        done = await settled_completions(stack, 10, timeout_s=10)
    _assert_each_once(done, ids)


# -- 7. HubSpot's daily limit ----------------------------------------------------------------


async def test_daily_limit_holds_the_portal_until_the_next_day(empty_database):
    steps = [Step(workflow_id=9009, action_id=a, limit=10, period=1, unit="seconds") for a in (1, 2, 3)]
    async with local_stack(empty_database) as stack:
        portal, db = stack.portal_id, stack.daemons[0].db
        await _faults(stack, daily_limit=True)
        ids = [f"ap-{portal}-9009-{s.action_id}-{i}" for i in range(5) for s in steps]
        for n, callback_id in enumerate(ids):
            await _enroll(stack, steps[n % 3], [callback_id])

        async def limited():
            return (await db.transaction(portals_sql.get_portal, portal)).held_until

        until = await wait_until(limited)
        today = dt.datetime.now(UTC).date()
        assert until == dt.datetime.combine(today + dt.timedelta(days=1), dt.time(0, 5), tzinfo=UTC)

        async def all_pending():
            return await _states(db, ids) == {"pending": 15}

        await wait_until(all_pending, timeout_s=5)  # every release went back in line
        sent = await _stats(stack)
        await trio.sleep(1.5)
        assert await _stats(stack) == sent  # nothing more is sent for the portal
        assert await _states(db, ids) == {"pending": 15}
    assert sent["rate_limited"] == _complete_calls(sent) == _complete_calls(sent, 429)
    assert sent["rate_limited"] == 1  # one call learnt it; the others were not made
    assert sent["completions"] == 0


# -- 8. dated API paths ----------------------------------------------------------------------


async def test_dated_callbacks_api_and_v3_token_endpoint(empty_database):
    step = Step(workflow_id=9010, action_id=1, limit=10, period=1, unit="seconds")
    async with local_stack(empty_database, overrides={"callbacks_api": "2026-03"}) as stack:
        portal = stack.portal_id
        first = [f"ap-{portal}-9010-a{i}" for i in range(4)]
        await _enroll_as_one_batch(stack, step, first)
        await settled_completions(stack, 4)
        await _tokens(stack, "expire")  # the next send refreshes the token
        await _enroll(stack, step, [f"ap-{portal}-9010-b0"])
        done = await settled_completions(stack, 5)
        stats = await _stats(stack)
    assert len(done) == 5
    dated = "/automation/actions/callbacks/2026-03"
    paths = stats["paths"]
    assert paths[f"POST {dated}/complete 204"] >= 1  # the batch of four
    assert paths[f"POST {dated}/<callback_id>/complete 204"] >= 1  # the single one
    assert paths[f"POST {dated}/<callback_id>/complete 401"] == 1  # before the refresh
    assert not [p for p in paths if "/automation/v4/" in p]
    assert paths["POST /oauth/v3/token 200"] == 2  # the install's code exchange and one refresh
    assert not [p for p in paths if "/oauth/v1/token" in p or "/oauth/2026-03/" in p]


# -- 9. registering the action definition ----------------------------------------------------


async def test_register_creates_the_action_and_a_wrong_key_is_rejected_without_leaking_it():
    config = SandboxConfig(client_id="cid", client_secret="secret", app_id=4242,
                           developer_api_key="dev-key-f00dfeed-4242")
    definition = action_definition("https://throttle.example.org")
    async with trio.open_nursery() as nursery:
        sandbox = await nursery.start(serve_sandbox, config)
        created, was_new = await register(sandbox.url, 4242, "dev-key-f00dfeed-4242", definition)
        with pytest.raises(HubSpotRejected) as wrong_key:
            await register(sandbox.url, 4242, "not-the-key-5eca1", definition)
        with pytest.raises(HubSpotRejected) as wrong_app:
            await register(sandbox.url, 999, "dev-key-f00dfeed-4242", definition)
        nursery.cancel_scope.cancel()
    assert was_new and created["id"] and created["revisionId"] == "1"
    assert created["actionUrl"] == "https://throttle.example.org/api/hubspot/action"
    assert created["inputFields"] == definition["inputFields"] and created["labels"]["en"]
    assert len(sandbox.state.actions.definitions) == 1  # the refused ones stored nothing
    assert wrong_key.value.status == 401 and wrong_app.value.status == 404
    for error in (wrong_key.value, wrong_app.value):
        assert "not-the-key-5eca1" not in str(error) and "dev-key-f00dfeed" not in str(error)
        assert "not-the-key-5eca1" not in repr(error) and "dev-key-f00dfeed" not in repr(error)


async def test_registering_again_updates_the_action_instead_of_adding_a_second():
    config = SandboxConfig(client_id="cid", client_secret="secret", app_id=4242,
                           developer_api_key="dev-key-f00dfeed-4242")
    definition = action_definition("https://throttle.example.org")
    other = action_definition("https://other.example.org")  # another deployment's action: left alone
    async with trio.open_nursery() as nursery:
        sandbox = await nursery.start(serve_sandbox, config)
        await register(sandbox.url, 4242, "dev-key-f00dfeed-4242", other)
        first, first_new = await register(sandbox.url, 4242, "dev-key-f00dfeed-4242", definition)
        definition["labels"]["en"]["actionName"] = "Throttle (renamed)"
        second, second_new = await register(sandbox.url, 4242, "dev-key-f00dfeed-4242", definition)
        nursery.cancel_scope.cancel()
    assert (first_new, second_new) == (True, False)
    assert second["id"] == first["id"] and second["revisionId"] == "2"
    assert second["labels"]["en"]["actionName"] == "Throttle (renamed)"
    assert len(sandbox.state.actions.definitions) == 2  # before: a third, one more per run
