"""The HubSpot sandbox over real loopback HTTP: each endpoint family once, time from a settable clock."""

from __future__ import annotations

from functools import partial
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from throttled.sandbox import SandboxConfig, serve_sandbox

CONFIG = SandboxConfig(client_id="cid", client_secret="csecret", app_id=777, default_portal_id=62515)
REDIRECT = "http://localhost:8080/oauth/callback?keep=1"
RATE_HEADERS = ("X-HubSpot-RateLimit-Interval-Milliseconds", "X-HubSpot-RateLimit-Max",
                "X-HubSpot-RateLimit-Remaining")


class FakeClock:
    """``now`` in epoch seconds that a test moves by hand (no real sleeps)."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
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


async def install(client: httpx.AsyncClient, path: str = "/oauth/authorize", version: str = "v3") -> dict:
    """Run the OAuth code flow by hand: authorize → follow the 302 ourselves → exchange the code."""
    params = {"client_id": "cid", "redirect_uri": REDIRECT, "scope": "automation oauth", "state": "st-1"}
    answer = await client.get(path, params=params)
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "http://localhost:8080/oauth/callback"
    query = parse_qs(location.query)
    assert query["keep"] == ["1"] and query["state"] == ["st-1"]
    form = {"grant_type": "authorization_code", "client_id": "cid", "client_secret": "csecret",
            "redirect_uri": REDIRECT, "code": query["code"][0]}
    answer = await client.post(f"/oauth/{version}/token", data=form)
    assert answer.status_code == 200, answer.text
    return answer.json() | {"code": query["code"][0]}


def bearer(tokens: dict) -> dict:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def item(callback_id: str) -> dict:
    return {"callbackId": callback_id, "outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": {}}


async def test_oauth_code_flow_v3_and_v1(client, sandbox):
    tokens = await install(client)
    assert tokens["hub_id"] == 62515 and tokens["token_use"] == "access_token"
    assert tokens["expires_in"] == 1800 and tokens["scopes"] == ["automation", "oauth"]
    assert len(tokens["access_token"]) >= 100
    reuse = {"grant_type": "authorization_code", "client_id": "cid", "client_secret": "csecret",
             "redirect_uri": REDIRECT, "code": tokens["code"]}
    answer = await client.post("/oauth/v3/token", data=reuse)
    assert answer.status_code == 400 and answer.json()["status"] == "BAD_AUTH_CODE"

    pinned = await install(client, "/oauth/4455667/authorize", version="v1")
    assert set(pinned) == {"access_token", "refresh_token", "expires_in", "token_type", "code"}
    answer = await client.get(f"/oauth/v1/access-tokens/{pinned['access_token']}")
    assert answer.status_code == 200
    info = answer.json()
    assert (info["hub_id"], info["app_id"], info["expires_in"]) == (4455667, 777, 1800)
    assert answer.headers["X-HubSpot-RateLimit-Remaining"] == "109"
    assert (await client.get("/oauth/v1/access-tokens/unknown")).status_code == 404
    assert sandbox.state.token_calls == {62515: 2, 4455667: 1}


async def test_authorize_unknown_client_is_400_json(client):
    answer = await client.get("/oauth/authorize", params={"client_id": "nope", "redirect_uri": REDIRECT})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_client"


async def test_refresh_then_revoke(client):
    tokens = await install(client)
    form = {"grant_type": "refresh_token", "client_id": "cid", "client_secret": "csecret",
            "refresh_token": tokens["refresh_token"]}
    fresh = (await client.post("/oauth/v1/token", data=form)).json()
    assert fresh["refresh_token"] == tokens["refresh_token"] and fresh["access_token"] != tokens["access_token"]
    bad_client = await client.post("/oauth/v1/token", data=form | {"client_secret": "wrong"})
    assert bad_client.status_code == 400 and bad_client.json()["error"] == "invalid_client"
    assert (await client.post("/_sandbox/tokens/revoke", json={"portal_id": 62515})).json() == {"revoked": 1}
    answer = await client.post("/oauth/v3/token", data=form)
    assert answer.status_code == 400
    assert answer.json()["status"] == "BAD_REFRESH_TOKEN" and answer.json()["error"] == "invalid_grant"
    assert tokens["refresh_token"] not in answer.text


async def test_expired_token_gives_401_until_refreshed(client, clock):
    tokens = await install(client)
    url = "/automation/v4/actions/callbacks/cb-1/complete"
    answer = await client.post(url, json={"outputFields": {"hs_execution_state": "SUCCESS"}}, headers=bearer(tokens))
    assert answer.status_code == 204 and answer.headers["X-HubSpot-RateLimit-Max"] == "110"
    assert (await client.post("/_sandbox/tokens/expire", json={"portal_id": 62515})).json() == {"expired": 1}
    answer = await client.post(url.replace("cb-1", "cb-2"), json=item("x"), headers=bearer(tokens))
    assert answer.status_code == 401
    assert answer.json()["category"] == "INVALID_AUTHENTICATION" and answer.json()["correlationId"]
    assert (await client.post(url, json=item("x"))).status_code == 401  # no header at all
    form = {"grant_type": "refresh_token", "client_id": "cid", "client_secret": "csecret",
            "refresh_token": tokens["refresh_token"]}
    fresh = (await client.post("/oauth/v3/token", data=form)).json()
    answer = await client.post(url.replace("cb-1", "cb-2"), json=item("x"), headers=bearer(fresh))
    assert answer.status_code == 204


async def test_rate_limit_429_after_110_requests_then_window_rolls(client, clock, sandbox):
    tokens = await install(client)
    first = await client.post("/automation/v4/actions/callbacks/complete",
                              json={"inputs": [item("r-0")]}, headers=bearer(tokens))
    assert first.status_code == 204
    assert [first.headers[h] for h in RATE_HEADERS] == ["10000", "110", "109"]
    for _ in range(109):
        last = await client.get(f"/oauth/v1/access-tokens/{tokens['access_token']}")
    assert last.status_code == 200 and last.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    limited = await client.post("/automation/actions/callbacks/2026-03/complete",
                                json={"inputs": [item("r-1")]}, headers=bearer(tokens))
    assert limited.status_code == 429
    assert [limited.headers[h] for h in RATE_HEADERS] == ["10000", "110", "0"]
    body = limited.json()
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["correlationId"] and body["requestId"]
    clock.t += 10.0
    again = await client.post("/automation/actions/callbacks/2026-03/complete",
                              json={"inputs": [item("r-1")]}, headers=bearer(tokens))
    assert again.status_code == 204 and again.headers["X-HubSpot-RateLimit-Remaining"] == "109"
    stats = (await client.get("/_sandbox/stats")).json()
    assert stats["rate_limited"] == 1 and stats["requests"]["complete_batch 429"] == 1
    assert [c["callbackId"] for c in sandbox.state.completions] == ["r-0", "r-1"]


async def test_batch_completion_listing_and_atomic_rejection(client, clock):
    tokens = await install(client)
    other = await install(client, "/oauth/4455667/authorize")
    batch = {"inputs": [item("b-1"), item("b-2")]}
    answer = await client.post("/automation/v4/actions/callbacks/complete", json=batch, headers=bearer(tokens))
    assert answer.status_code == 204 and answer.content == b""
    dated = await client.post("/automation/actions/callbacks/2026-03/o-1/complete",
                              json={"outputFields": {"hs_execution_state": "FAIL_CONTINUE"}}, headers=bearer(other))
    assert dated.status_code == 204
    listing = (await client.get("/_sandbox/completions")).json()["completions"]
    assert listing == [
        {"callbackId": "b-1", "portalId": 62515, "completedAt": clock.t,
         "outputFields": {"hs_execution_state": "SUCCESS"}, "via": "batch"},
        {"callbackId": "b-2", "portalId": 62515, "completedAt": clock.t,
         "outputFields": {"hs_execution_state": "SUCCESS"}, "via": "batch"},
        {"callbackId": "o-1", "portalId": 4455667, "completedAt": clock.t,
         "outputFields": {"hs_execution_state": "FAIL_CONTINUE"}, "via": "single"},
    ]
    only = (await client.get("/_sandbox/completions", params={"portal_id": 4455667})).json()["completions"]
    assert [c["callbackId"] for c in only] == ["o-1"]

    repeat = await client.post("/automation/v4/actions/callbacks/complete",
                               json={"inputs": [item("b-3"), item("b-2")]}, headers=bearer(tokens))
    assert repeat.status_code == 400
    assert repeat.json()["category"] == "VALIDATION_ERROR" and repeat.json()["context"] == {"callbackIds": ["b-2"]}
    too_many = await client.post("/automation/v4/actions/callbacks/complete",
                                 json={"inputs": [item(f"m-{i}") for i in range(101)]}, headers=bearer(tokens))
    assert too_many.status_code == 400
    malformed = await client.post("/automation/v4/actions/callbacks/complete", content=b"{not json",
                                  headers=bearer(tokens) | {"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["category"] == "VALIDATION_ERROR"
    assert "X-HubSpot-RateLimit-Remaining" in malformed.headers
    assert len((await client.get("/_sandbox/completions")).json()["completions"]) == 3


async def test_stats_reset_and_unknown_route(client):
    tokens = await install(client)
    await client.post("/automation/v4/actions/callbacks/complete", json={"inputs": [item("s-1")]},
                      headers=bearer(tokens))
    stats = (await client.get("/_sandbox/stats")).json()
    assert stats == {"requests": {"authorize 302": 1, "token 200": 1, "complete_batch 204": 1},
                     "paths": {"GET /oauth/authorize 302": 1, "POST /oauth/v3/token 200": 1,
                               "POST /automation/v4/actions/callbacks/complete 204": 1},
                     "token_calls": {"62515": 1}, "rate_limited": 0, "completions": 1,
                     "max_in_window": {"62515": 1}}
    assert (await client.post("/_sandbox/reset")).status_code == 204
    assert (await client.get("/_sandbox/completions")).json() == {"completions": []}
    again = await client.post("/automation/v4/actions/callbacks/complete", json={"inputs": [item("s-1")]},
                              headers=bearer(tokens))
    assert again.status_code == 204  # tokens kept, completion record forgotten
    missing = await client.get("/no/such/path")
    assert missing.status_code == 404 and missing.json()["status"] == "error"
    bad = await client.post("/_sandbox/tokens/expire", json={"portal": "x"})
    assert bad.status_code == 400
