"""Every row of the answer table (``throttled/hubspot/answers.py``) exercised against the
sandbox over loopback HTTP: the sandbox gives HubSpot's answer (a fault of its own for each
row), the real client calls it, and the classified answer must be the row's."""

from __future__ import annotations

import time

import pytest
import trio

from tests.support.hubspot_side import REDIRECT, authorization_code, sandbox_grant
from throttled.hubspot.answers import Action, RefersTo
from throttled.hubspot.client import HubSpotClient
from throttled.hubspot.errors import HubSpotRefused
from throttled.sandbox import SandboxConfig, serve_sandbox

PORTAL = 62515
BATCH, ONE = ["cb-a", "cb-b", "cb-c"], ["cb-a"]

# (row, faults, ids, expire the token first) -> (action, refers to, kind)
CALLBACK_ROWS = [
    ("204 batch", {}, BATCH, False, Action.DONE, RefersTo.REQUEST, "ok"),
    ("204 single", {}, ONE, False, Action.DONE, RefersTo.REQUEST, "ok"),
    ("401 expired token", {}, BATCH, True, Action.REFRESH, RefersTo.TOKEN, "401"),
    ("401 refused app", {"callbacks_refusal": "unauthorized"}, ONE, False, Action.REFRESH, RefersTo.TOKEN, "401"),
    ("403 missing scopes, batch", {"callbacks_refusal": "missing_scopes"}, BATCH, False,
     Action.HOLD_PORTAL, RefersTo.PORTAL, "missing_scopes"),
    ("403 missing scopes, single", {"callbacks_refusal": "missing_scopes"}, ONE, False,
     Action.HOLD_PORTAL, RefersTo.PORTAL, "missing_scopes"),
    ("403 forbidden", {"callbacks_refusal": "forbidden"}, BATCH, False, Action.HOLD_PORTAL, RefersTo.PORTAL, "forbidden"),
    ("404 retired path, batch", {"callbacks_refusal": "retired_path"}, BATCH, False,
     Action.HOLD_PORTAL, RefersTo.APP, "endpoint_missing"),
    ("404 retired path, single", {"callbacks_refusal": "retired_path"}, ONE, False,
     Action.HOLD_PORTAL, RefersTo.APP, "endpoint_missing"),
    ("404 unknown callback, single", {"callbacks_refusal": "unknown_callbacks"}, ONE, False,
     Action.EXPIRED, RefersTo.CALLBACK, "unknown_callback"),
    ("unknown callbacks, batch", {"callbacks_refusal": "unknown_callbacks"}, BATCH, False,
     Action.SPLIT, RefersTo.REQUEST, "batch_refused"),
    ("410 gone, single", {"callbacks_refusal": "gone"}, ONE, False, Action.EXPIRED, RefersTo.CALLBACK, "gone"),
    ("405", {"callbacks_refusal": "method_not_allowed"}, BATCH, False, Action.HOLD_PORTAL, RefersTo.APP, "request_refused"),
    ("413 batch", {"callbacks_refusal": "too_large"}, BATCH, False, Action.SPLIT, RefersTo.REQUEST, "batch_refused"),
    ("477", {"callbacks_refusal": "wait_477"}, BATCH, False, Action.WAIT, RefersTo.PORTAL, "477"),
    ("400 poisoned, batch", {"poison_callback_ids": ["cb-b"]}, BATCH, False, Action.SPLIT, RefersTo.REQUEST, "batch_refused"),
    ("400 poisoned, single", {"poison_callback_ids": ["cb-a"]}, ONE, False, Action.FAILED, RefersTo.CALLBACK, "refused"),
    ("429 ten-secondly", {"rate_limit_storm": 1}, BATCH, False, Action.WAIT, RefersTo.PORTAL, "rate_limited"),
    ("429 daily", {"daily_limit": True}, BATCH, False, Action.HOLD_PORTAL, RefersTo.PORTAL, "daily_limit"),
    ("503", {"error_rate": 1.0}, BATCH, False, Action.RETRY, RefersTo.TRANSIENT, "5xx"),
    ("521", {"error_rate": 1.0, "error_status": 521}, ONE, False, Action.RETRY, RefersTo.TRANSIENT, "5xx"),
    ("no answer in time", {"stall_s": 2.0}, BATCH, False, Action.RETRY, RefersTo.TRANSIENT, "transport"),
]


async def _run(check, **config_changes):
    config = SandboxConfig(client_id="cid", client_secret="secret", app_id=1, default_portal_id=PORTAL, **config_changes)
    async with trio.open_nursery() as nursery:
        sandbox = await nursery.start(serve_sandbox, config)
        client = HubSpotClient(sandbox.url, "cid", "secret", timeout_s=0.5)
        try:
            grant = await sandbox_grant(sandbox.url, config.client_id, client)
            await check(sandbox, client, grant, config)
        finally:
            await client.aclose()
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize(("faults", "ids", "expire", "action", "refers_to", "kind"), [r[1:] for r in CALLBACK_ROWS],
                         ids=[r[0] for r in CALLBACK_ROWS])
async def test_callback_rows(faults, ids, expire, action, refers_to, kind):
    async def check(sandbox, client, grant, config):
        sandbox.state.set_faults(faults)
        if expire:
            sandbox.state.expire_access_tokens(PORTAL, time.time())
        answer = await client.complete(grant.access_token, ids, PORTAL)
        assert (answer.action, answer.refers_to, answer.kind) == (action, refers_to, kind), answer

    await _run(check)


async def test_an_already_completed_callback_is_already_done():
    async def check(sandbox, client, grant, config):
        assert (await client.complete(grant.access_token, ONE, PORTAL)).action is Action.DONE
        again = await client.complete(grant.access_token, ONE, PORTAL)
        assert (again.action, again.refers_to) == (Action.ALREADY_DONE, RefersTo.CALLBACK)

    await _run(check)


# (row, faults, what) -> (action, kind); what: refresh, exchange (a spent code) or info
TOKEN_ROWS = [
    ("token 503", {"token_refusal": "server_error"}, "refresh", Action.RETRY, "5xx"),
    ("token 429 daily", {"token_refusal": "daily_limit"}, "refresh", Action.HOLD_PORTAL, "daily_limit"),
    ("token 429 ten-secondly", {"token_rate_limit_storm": 1}, "refresh", Action.WAIT, "rate_limited"),
    ("token bad client", {"token_refusal": "invalid_client"}, "refresh", Action.HOLD_PORTAL, "client_refused"),
    ("token revoked", {}, "revoked", Action.REVOKED, "revoked"),
    ("token spent code", {}, "exchange", Action.FAILED, "bad_code"),
    ("info 404", {"token_info_refusal": "not_found"}, "info", Action.FAILED, "info_refused"),
    ("info 502", {"token_info_refusal": "server_error"}, "info", Action.RETRY, "5xx"),
    ("info 429", {"token_info_refusal": "rate_limited"}, "info", Action.WAIT, "rate_limited"),
]


@pytest.mark.parametrize(("faults", "what", "action", "kind"), [r[1:] for r in TOKEN_ROWS], ids=[r[0] for r in TOKEN_ROWS])
async def test_token_rows(faults, what, action, kind):
    async def check(sandbox, client, grant, config):
        sandbox.state.set_faults(faults)

        async def ask():
            if what == "refresh":
                await client.refresh(grant.refresh_token)
            elif what == "revoked":
                sandbox.state.revoke_refresh_tokens(PORTAL)
                await client.refresh(grant.refresh_token)
            elif what == "exchange":
                code = await authorization_code(sandbox.url, config.client_id)
                await client.exchange_code(code, REDIRECT)
                await client.exchange_code(code, REDIRECT)
            else:
                await client.token_info(grant.access_token)

        with pytest.raises(HubSpotRefused) as refused:
            await ask()
        answer = refused.value.answer
        assert (answer.action, answer.kind) == (action, kind), answer
        assert grant.access_token not in str(refused.value) and grant.refresh_token not in str(refused.value)

    await _run(check)


async def test_token_200_and_info_200():
    async def check(sandbox, client, grant, config):
        fresh = await client.refresh(grant.refresh_token)
        assert fresh.access_token != grant.access_token and fresh.expires_in_s == 1800
        assert await client.token_info(fresh.access_token) == (PORTAL, ["automation", "oauth"])

    await _run(check)


async def test_token_404_on_v3_falls_back_to_v1_once():
    async def check(sandbox, client, grant, config):
        sandbox.state.set_faults({"token_refusal": "retired_path"})  # v3 answers 404, v1 works
        assert (await client.refresh(grant.refresh_token)).access_token
        assert client.token_path == "/oauth/v1/token"
        paths = sandbox.state.paths
        assert paths["POST /oauth/v3/token 404"] == 1 and paths["POST /oauth/v1/token 200"] == 1

    await _run(check)
