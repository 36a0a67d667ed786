"""Sandbox faults, the request log and action definitions over real loopback HTTP.

Time for the rules comes from a settable clock; the latency and stall faults really sleep
(``trio.sleep``), so they use fractions of a second.
"""

from __future__ import annotations

import time
from functools import partial
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from throttled.sandbox import Faults, SandboxConfig, serve_sandbox

CONFIG = SandboxConfig(client_id="cid", client_secret="csecret", app_id=777, default_portal_id=62515,
                       developer_api_key="dev-key-123")
REDIRECT = "http://localhost:8080/oauth/callback"
BATCH = "/automation/v4/actions/callbacks/complete"
T0 = 1_700_000_000.0


class FakeClock:
    """``now`` in epoch seconds that a test moves by hand."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sandbox(nursery, clock):
    return await nursery.start(partial(serve_sandbox, CONFIG, clock=clock))


@pytest.fixture
async def client(sandbox):
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=10.0) as client:
        yield client


@pytest.fixture
async def auth(client) -> dict:
    """Install the default portal; the bearer header of its access token."""
    answer = await client.get("/oauth/authorize", params={"client_id": "cid", "redirect_uri": REDIRECT})
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    form = {"grant_type": "authorization_code", "client_id": "cid", "client_secret": "csecret",
            "redirect_uri": REDIRECT, "code": code}
    tokens = (await client.post("/oauth/v3/token", data=form)).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def item(callback_id: str) -> dict:
    return {"callbackId": callback_id, "outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": {}}


async def set_faults(client: httpx.AsyncClient, **changes) -> dict:
    answer = await client.post("/_sandbox/faults", json=changes)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_fault_control_endpoints(client):
    off = (await client.get("/_sandbox/faults")).json()
    assert off == Faults().to_json()
    now = await set_faults(client, error_rate=0.25, seed=9, poison_callback_ids=["p-2", "p-1"])
    assert (now["error_rate"], now["seed"], now["poison_callback_ids"]) == (0.25, 9, ["p-1", "p-2"])
    merged = await set_faults(client, daily_limit=True)
    assert merged == now | {"daily_limit": True}
    for bad in ({"error_rate": "high"}, {"unknown": 1}, {"rate_limit_storm": -2}, [1]):
        answer = await client.post("/_sandbox/faults", json=bad)
        assert answer.status_code == 400 and answer.json()["category"] == "VALIDATION_ERROR"
    malformed = await client.post("/_sandbox/faults", content=b"{nope", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    assert (await client.get("/_sandbox/faults")).json() == merged
    cleared = await client.delete("/_sandbox/faults")
    assert cleared.status_code == 200 and cleared.json() == off
    assert (await client.get("/_sandbox/stats")).json()["requests"] == {}  # controls are not counted


async def test_server_errors_record_nothing_but_count_in_stats(client, auth, sandbox):
    await set_faults(client, error_rate=1.0, error_status=502)
    answer = await client.post(BATCH, json={"inputs": [item("e-1")]}, headers=auth)
    assert answer.status_code == 502 and answer.json()["category"] == "BAD_GATEWAY"
    single = await client.post("/automation/actions/callbacks/2026-03/e-1/complete", json=item("x"), headers=auth)
    assert single.status_code == 502
    await client.delete("/_sandbox/faults")
    assert (await client.post(BATCH, json={"inputs": [item("e-1")]}, headers=auth)).status_code == 204
    stats = (await client.get("/_sandbox/stats")).json()
    assert stats["requests"]["complete_batch 502"] == 1 and stats["requests"]["complete_single 502"] == 1
    assert stats["completions"] == 1 and [c["callbackId"] for c in sandbox.state.completions] == ["e-1"]


async def test_latency_delays_the_answer(client, auth):
    await set_faults(client, latency_s=0.15)
    started = time.monotonic()
    answer = await client.post(BATCH, json={"inputs": [item("l-1")]}, headers=auth)
    assert answer.status_code == 204 and time.monotonic() - started >= 0.15
    started = time.monotonic()
    repeat = await client.post(BATCH, json={"inputs": [item("l-1")]}, headers=auth)
    assert repeat.status_code == 400 and time.monotonic() - started >= 0.15  # errors wait too


async def test_stall_outlasts_the_client_yet_the_completion_counts(client, auth, sandbox):
    await set_faults(client, stall_s=0.3)
    with pytest.raises(httpx.ReadTimeout):
        await client.post(BATCH, json={"inputs": [item("s-1")]}, headers=auth, timeout=0.1)
    assert [c["callbackId"] for c in sandbox.state.completions] == ["s-1"]
    await client.delete("/_sandbox/faults")
    retry = await client.post(BATCH, json={"inputs": [item("s-1")]}, headers=auth)
    assert retry.status_code == 400 and retry.json()["context"] == {"callbackIds": ["s-1"]}


async def test_rate_limit_storm_then_daily_limit(client, auth):
    await set_faults(client, rate_limit_storm=2)
    for left in (1, 0):
        answer = await client.post(BATCH, json={"inputs": [item("r-1")]}, headers=auth)
        assert answer.status_code == 429 and answer.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert answer.headers["X-HubSpot-RateLimit-Remaining"] == "0"
        assert (await client.get("/_sandbox/faults")).json()["rate_limit_storm"] == left
    assert (await client.post(BATCH, json={"inputs": [item("r-1")]}, headers=auth)).status_code == 204

    await set_faults(client, daily_limit=True)
    for _ in range(2):
        answer = await client.post(BATCH, json={"inputs": [item("r-2")]}, headers=auth)
        assert answer.status_code == 429
        assert answer.json()["policyName"] == "DAILY"
        assert answer.json()["message"] == "You have reached your daily limit."
        assert answer.headers["X-HubSpot-RateLimit-Remaining"] == "109"
    await set_faults(client, daily_limit=False)
    assert (await client.post(BATCH, json={"inputs": [item("r-2")]}, headers=auth)).status_code == 204
    stats = (await client.get("/_sandbox/stats")).json()
    assert stats["rate_limited"] == 4 and stats["requests"]["complete_batch 429"] == 4
    assert stats["max_in_window"] == {"62515": 2}  # 429s are not in the window


async def test_poison_ids_fail_the_batch_and_the_single_complete(client, auth, sandbox):
    await set_faults(client, poison_callback_ids=["p-1"])
    answer = await client.post(BATCH, json={"inputs": [item("ok-1"), item("p-1")]}, headers=auth)
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR" and answer.json()["context"] == {"callbackIds": ["p-1"]}
    single = await client.post("/automation/v4/actions/callbacks/p-1/complete", json=item("x"), headers=auth)
    assert single.status_code == 400 and single.json()["context"] == {"callbackIds": ["p-1"]}
    assert sandbox.state.completions == []


async def test_tokens_expire_early_under_the_fault(client, auth, clock):
    await set_faults(client, token_lifetime_s=60)
    answer = await client.get("/oauth/authorize", params={"client_id": "cid", "redirect_uri": REDIRECT})
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    form = {"grant_type": "authorization_code", "client_id": "cid", "client_secret": "csecret",
            "redirect_uri": REDIRECT, "code": code}
    tokens = (await client.post("/oauth/v1/token", data=form)).json()
    assert tokens["expires_in"] == 1800
    early = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.post(BATCH, json={"inputs": [item("t-1")]}, headers=early)).status_code == 204
    clock.t += 60
    assert (await client.post(BATCH, json={"inputs": [item("t-2")]}, headers=early)).status_code == 401
    assert (await client.post(BATCH, json={"inputs": [item("t-2")]}, headers=auth)).status_code == 204


async def test_request_log_and_max_in_window(client, auth, clock):
    for t in (0.0, 5.0, 9.999, 10.0, 25.0):
        clock.t = T0 + t
        answer = await client.post(BATCH, json={"inputs": [item(f"q-{t}")]}, headers=auth)
        assert answer.status_code == 204
    times = (await client.get("/_sandbox/requests", params={"portal_id": 62515})).json()["times"]
    assert times == [T0, T0 + 5.0, T0 + 9.999, T0 + 10.0, T0 + 25.0]
    assert (await client.get("/_sandbox/stats")).json()["max_in_window"] == {"62515": 3}
    assert (await client.get("/_sandbox/requests", params={"portal_id": 1})).json() == {"times": []}
    assert (await client.get("/_sandbox/requests")).status_code == 400
    assert (await client.get("/_sandbox/requests", params={"portal_id": "x"})).status_code == 400
    await client.post("/_sandbox/reset")
    assert (await client.get("/_sandbox/requests", params={"portal_id": 62515})).json() == {"times": []}


async def test_action_definition_endpoints(client):
    definition = {"actionUrl": "http://localhost:8080/hubspot/action", "objectTypes": ["CONTACT"],
                  "inputFields": [], "labels": {"en": {"actionName": "Throttle"}}}
    url = "/automation/v4/actions/777"
    created = await client.post(url, params={"hapikey": "dev-key-123"}, json=definition)
    assert created.status_code == 201
    body = created.json()
    assert body == definition | {"id": body["id"], "revisionId": "1", "published": False, "functions": []}
    listed = await client.get(url, params={"hapikey": "dev-key-123"})
    assert listed.status_code == 200 and listed.json() == {"results": [body]}

    assert (await client.get(url)).status_code == 401
    wrong = await client.get(url, params={"hapikey": "guess-456"})
    assert wrong.status_code == 401 and "guess-456" not in wrong.text and "dev-key-123" not in wrong.text
    assert (await client.get("/automation/v4/actions/778", params={"hapikey": "dev-key-123"})).status_code == 404
    bad = await client.post(url, params={"hapikey": "dev-key-123"}, json=definition | {"actionUrl": "http://x.org/a"})
    assert bad.status_code == 400 and bad.json()["category"] == "VALIDATION_ERROR"
    stats = (await client.get("/_sandbox/stats")).json()
    assert stats["requests"] == {"actions_create 201": 1, "actions_list 200": 1, "actions_list 401": 2,
                                 "actions_list 404": 1, "actions_create 400": 1}
