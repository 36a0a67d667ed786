"""Rules of the HubSpot sandbox, driven with plain calls and explicit ``now`` (epoch seconds)."""

from __future__ import annotations

import json

import pytest

from throttled.sandbox.state import (
    MALFORMED_JSON,
    SandboxConfig,
    SandboxError,
    SandboxState,
    TokenGrant,
)

REDIRECT = "http://localhost:8080/oauth/callback"
T0 = 1_700_000_000.0
PORTAL = 62515


def make_state(**overrides) -> SandboxState:
    return SandboxState(SandboxConfig(client_id="cid", client_secret="csecret", app_id=777, **overrides))


def install(state: SandboxState, now: float = T0, portal: int | None = None) -> TokenGrant:
    code = state.authorize("cid", REDIRECT, portal, now)
    return state.exchange_code("cid", "csecret", REDIRECT, code, now)


def raises(status: int, fn, *args, **kwargs) -> SandboxError:
    with pytest.raises(SandboxError) as info:
        fn(*args, **kwargs)
    assert info.value.status == status, info.value.body
    return info.value


def item(callback_id: str, state: str = "SUCCESS") -> dict:
    return {"callbackId": callback_id, "outputFields": {"hs_execution_state": state}, "typedOutputs": {}}


# --- OAuth ----------------------------------------------------------------------------------


def test_code_exchange_issues_long_tokens_for_default_portal():
    grant = install(make_state())
    assert grant.portal_id == PORTAL
    assert len(grant.access_token) >= 100 and len(grant.refresh_token) >= 100
    assert grant.access_token != grant.refresh_token
    assert grant.to_json("v1").keys() == {"access_token", "refresh_token", "expires_in", "token_type"}
    v3 = grant.to_json("v3")
    assert v3["expires_in"] == 1800 and v3["token_type"] == "bearer"
    assert (v3["token_use"], v3["hub_id"], v3["scopes"]) == ("access_token", PORTAL, ["automation", "oauth"])


def test_authorize_pins_explicit_portal_and_rejects_unknown_client():
    state = make_state()
    assert install(state, portal=4455667).portal_id == 4455667
    err = raises(400, state.authorize, "other", REDIRECT, None, T0)
    assert err.body["error"] == "invalid_client"


def test_code_is_single_use():
    state = make_state()
    code = state.authorize("cid", REDIRECT, None, T0)
    state.exchange_code("cid", "csecret", REDIRECT, code, T0 + 1)
    err = raises(400, state.exchange_code, "cid", "csecret", REDIRECT, code, T0 + 2)
    assert (err.body["status"], err.body["error"]) == ("BAD_AUTH_CODE", "invalid_grant")


def test_code_expires_after_ten_minutes():
    state = make_state()
    early, late = (state.authorize("cid", REDIRECT, None, T0) for _ in range(2))
    state.exchange_code("cid", "csecret", REDIRECT, early, T0 + 599.9)
    err = raises(400, state.exchange_code, "cid", "csecret", REDIRECT, late, T0 + 600.0)
    assert err.body["status"] == "BAD_AUTH_CODE"


def test_code_needs_same_redirect_uri_and_survives_a_mismatch():
    state = make_state()
    code = state.authorize("cid", REDIRECT, None, T0)
    err = raises(400, state.exchange_code, "cid", "csecret", REDIRECT + "/x", code, T0)
    assert err.body["error"] == "invalid_grant"
    assert state.exchange_code("cid", "csecret", REDIRECT, code, T0).portal_id == PORTAL


def test_bad_client_secret_is_invalid_client_and_repr_hides_secrets():
    state = make_state()
    code = state.authorize("cid", REDIRECT, None, T0)
    err = raises(400, state.exchange_code, "cid", "wrong-secret", REDIRECT, code, T0)
    assert (err.body["status"], err.body["error"]) == ("BAD_CLIENT_ID", "invalid_client")
    shown = repr(err) + str(err) + json.dumps(err.body) + repr(state.config)
    assert "wrong-secret" not in shown and "csecret" not in shown and code not in shown


def test_refresh_gives_new_access_token_and_keeps_refresh_token():
    state = make_state()
    first = install(state)
    for version in ("v1", "v3"):
        again = state.refresh("cid", "csecret", first.refresh_token, T0 + 10, version)
        assert again.refresh_token == first.refresh_token
        assert again.access_token != first.access_token
        assert state.authenticate(again.access_token, T0 + 10) == PORTAL
    assert state.token_calls[PORTAL] == 3  # one code exchange + two refreshes


def test_rotation_flag_rotates_on_v3_only():
    state = make_state()
    state.rotate_refresh_tokens = True
    first = install(state)
    assert state.refresh("cid", "csecret", first.refresh_token, T0, "v1").refresh_token == first.refresh_token
    rotated = state.refresh("cid", "csecret", first.refresh_token, T0, "v3")
    assert rotated.refresh_token != first.refresh_token
    raises(400, state.refresh, "cid", "csecret", first.refresh_token, T0, "v3")
    assert state.refresh("cid", "csecret", rotated.refresh_token, T0, "v3").portal_id == PORTAL


def test_revoked_refresh_token_gives_hubspot_bad_refresh_token_body():
    state = make_state()
    grant = install(state)
    assert state.revoke_refresh_tokens(PORTAL) == 1
    err = raises(400, state.token, {"grant_type": "refresh_token", "client_id": "cid",
                                    "client_secret": "csecret", "refresh_token": grant.refresh_token}, T0, "v3")
    assert err.body | {"correlationId": "x"} == {
        "status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token", "correlationId": "x",
        "error": "invalid_grant", "error_description": "refresh token is invalid, expired or revoked"}
    assert grant.refresh_token not in repr(err) + json.dumps(err.body)


def test_token_form_dispatch_and_unknown_grant_type():
    state = make_state()
    code = state.authorize("cid", REDIRECT, 9, T0)
    body = state.token({"grant_type": "authorization_code", "client_id": "cid", "client_secret": "csecret",
                        "redirect_uri": REDIRECT, "code": code}, T0, "v3")
    assert body["hub_id"] == 9
    err = raises(400, state.token, {"grant_type": "password"}, T0, "v1")
    assert err.body["error"] == "unsupported_grant_type"


def test_access_token_expires_by_now_and_by_expire_call():
    state = make_state()
    grant = install(state)
    assert state.authenticate(grant.access_token, T0 + 1799.9) == PORTAL
    err = raises(401, state.authenticate, grant.access_token, T0 + 1800)
    assert err.body["category"] == "INVALID_AUTHENTICATION" and err.body["correlationId"]
    fresh = state.refresh("cid", "csecret", grant.refresh_token, T0 + 100)
    assert state.expire_access_tokens(PORTAL, T0 + 200) == 2
    raises(401, state.authenticate, fresh.access_token, T0 + 200)
    raises(401, state.authenticate, None, T0)


def test_access_token_info_fields_and_404_without_echoing_token():
    state = make_state()
    grant = install(state)
    body, headers = state.access_token_info(grant.access_token, T0 + 100.5)
    assert body["hub_id"] == PORTAL and body["app_id"] == 777 and body["expires_in"] == 1699
    assert body["hub_domain"] == f"demo-{PORTAL}.hubspot.com" and body["token_type"] == "access"
    assert headers["X-HubSpot-RateLimit-Remaining"] == "109"
    err = raises(404, state.access_token_info, grant.access_token, T0 + 1800)
    assert grant.access_token not in json.dumps(err.body) + repr(err)


# --- rate window ----------------------------------------------------------------------------


def test_rate_window_rolls_at_exactly_the_interval_boundary():
    state = make_state()
    for _ in range(55):
        state.check_rate(PORTAL, T0)
    for _ in range(55):
        headers = state.check_rate(PORTAL, T0 + 5)
    assert headers == {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                       "X-HubSpot-RateLimit-Max": "110", "X-HubSpot-RateLimit-Remaining": "0"}
    err = raises(429, state.check_rate, PORTAL, T0 + 9.999)
    assert err.body["policyName"] == "TEN_SECONDLY_ROLLING" and err.body["errorType"] == "RATE_LIMIT"
    assert err.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    # at exactly T0 + 10 the 55 requests of T0 leave the window; the 429 above did not count
    assert state.check_rate(PORTAL, T0 + 10)["X-HubSpot-RateLimit-Remaining"] == "54"
    assert state.rate_limited == 1
    assert state.check_rate(4455667, T0 + 10)["X-HubSpot-RateLimit-Remaining"] == "109"


# --- callbacks ------------------------------------------------------------------------------


def test_single_complete_records_once_then_rejects_repeat():
    state = make_state()
    token = install(state).access_token
    headers = state.complete(token, {"outputFields": {"hs_execution_state": "SUCCESS"}}, T0 + 1, callback_id="cb-1")
    assert headers["X-HubSpot-RateLimit-Remaining"] == "109"
    assert state.completions == [{"callbackId": "cb-1", "portalId": PORTAL, "completedAt": T0 + 1,
                                  "outputFields": {"hs_execution_state": "SUCCESS"}, "via": "single"}]
    err = raises(400, state.complete, token, item("ignored"), T0 + 2, callback_id="cb-1")
    assert err.body["message"] == "Callback cb-1 has already been completed"
    assert err.headers["X-HubSpot-RateLimit-Remaining"] == "108"  # 400s count and carry headers
    assert len(state.completions) == 1


def test_batch_with_completed_or_repeated_id_is_rejected_atomically():
    state = make_state()
    token = install(state).access_token
    state.complete(token, {"inputs": [item("done")]}, T0)
    err = raises(400, state.complete, token, {"inputs": [item("new-1"), item("done"), item("new-2")]}, T0)
    assert err.body["category"] == "VALIDATION_ERROR" and err.body["context"] == {"callbackIds": ["done"]}
    err = raises(400, state.complete, token, {"inputs": [item("a"), item("b"), item("a")]}, T0)
    assert err.body["context"] == {"callbackIds": ["a"]}
    assert [c["callbackId"] for c in state.completions] == ["done"]
    state.complete(token, {"inputs": [item("a"), item("b")]}, T0 + 3)
    assert [(c["callbackId"], c["via"], c["completedAt"]) for c in state.completions[1:]] == [
        ("a", "batch", T0 + 3), ("b", "batch", T0 + 3)]


def test_batch_cap_is_100_inputs():
    state = make_state()
    token = install(state).access_token
    err = raises(400, state.complete, token, {"inputs": [item(f"x{i}") for i in range(101)]}, T0)
    assert "at most 100" in err.body["message"] and state.completions == []
    state.complete(token, {"inputs": [item(f"x{i}") for i in range(100)]}, T0)
    assert len(state.completions) == 100


@pytest.mark.parametrize("body", [
    MALFORMED_JSON, None, [], {}, {"inputs": []}, {"inputs": "x"}, {"inputs": [1]},
    {"inputs": [{"outputFields": {}}]},
    {"inputs": [{"callbackId": "a"}]},
    {"inputs": [{"callbackId": "a", "outputFields": {"n": 1}}]},
    {"inputs": [{"callbackId": "a", "outputFields": {}, "typedOutputs": []}]},
])
def test_malformed_batches_are_validation_errors(body):
    state = make_state()
    token = install(state).access_token
    err = raises(400, state.complete, token, body, T0)
    assert err.body["status"] == "error" and err.body["category"] == "VALIDATION_ERROR"
    assert state.completions == []


def test_auth_and_rate_are_checked_before_validation():
    state = make_state(rate_limit_max=1)
    token = install(state).access_token
    raises(401, state.complete, "nope", MALFORMED_JSON, T0)
    raises(400, state.complete, token, MALFORMED_JSON, T0)
    raises(429, state.complete, token, MALFORMED_JSON, T0)


def test_reset_clears_completions_and_counters_but_keeps_tokens():
    state = make_state()
    token = install(state).access_token
    state.complete(token, {"inputs": [item("a")]}, T0)
    state.record_request("complete_batch", 204)
    assert state.stats() == {"requests": {"complete_batch 204": 1}, "paths": {}, "token_calls": {str(PORTAL): 1},
                             "rate_limited": 0, "completions": 1, "max_in_window": {str(PORTAL): 1}}
    state.reset()
    assert state.stats() == {"requests": {}, "paths": {}, "token_calls": {}, "rate_limited": 0, "completions": 0,
                             "max_in_window": {}}
    assert state.request_times(PORTAL) == []
    state.complete(token, {"inputs": [item("a")]}, T0 + 1)
    assert len(state.completions) == 1


# --- action definitions (§8) ----------------------------------------------------------------

DEFINITION = {
    "actionUrl": "https://throttle.example.org/hubspot/action", "objectTypes": ["CONTACT"],
    "inputFields": [{"typeDefinition": {"name": "max_throughput", "type": "number", "fieldType": "number"},
                     "supportedValueTypes": ["STATIC_VALUE"], "isRequired": True}],
    "labels": {"en": {"actionName": "Throttle"}},
}


def test_action_definitions_are_created_with_ids_and_listed():
    state = make_state()
    first = state.actions.create(777, "sandbox-dev-key", DEFINITION)
    assert first == DEFINITION | {"id": "1000001", "revisionId": "1", "published": False, "functions": []}
    local = DEFINITION | {"actionUrl": "http://127.0.0.1:8080/hubspot/action", "published": True, "id": "mine"}
    second = state.actions.create(777, "sandbox-dev-key", local)
    assert (second["id"], second["published"]) == ("1000002", True)
    first["labels"]["en"]["actionName"] = "changed by the caller"
    listed = state.actions.list(777, "sandbox-dev-key")["results"]
    assert [d["id"] for d in listed] == ["1000001", "1000002"]
    assert listed[0]["labels"]["en"]["actionName"] == "Throttle"


def test_action_definitions_need_the_developer_key_then_the_right_app():
    state = SandboxState(SandboxConfig(client_id="cid", client_secret="csecret", app_id=777,
                                       developer_api_key="dev-key-123"))
    for key in (None, "", "wrong-key-456"):
        err = raises(401, state.actions.list, 777, key)
        assert err.body["category"] == "INVALID_AUTHENTICATION"
        assert "wrong-key-456" not in json.dumps(err.body) and "dev-key-123" not in json.dumps(err.body)
    raises(401, state.actions.create, 778, "wrong-key-456", DEFINITION)  # key checked before the app
    assert raises(404, state.actions.create, 778, "dev-key-123", DEFINITION).body["category"] == "OBJECT_NOT_FOUND"
    raises(404, state.actions.list, 778, "dev-key-123")
    assert "dev-key-123" not in repr(state.config)


@pytest.mark.parametrize("body", [
    MALFORMED_JSON, [], {k: v for k, v in DEFINITION.items() if k != "actionUrl"},
    DEFINITION | {"actionUrl": "http://throttle.example.org/a"}, DEFINITION | {"actionUrl": "ftp://localhost/a"},
    DEFINITION | {"actionUrl": "https:///nohost"}, DEFINITION | {"actionUrl": 5},
    DEFINITION | {"inputFields": {}}, DEFINITION | {"inputFields": ["max"]},
    DEFINITION | {"labels": {"de": {"actionName": "Drossel"}}}, DEFINITION | {"labels": {"en": "Throttle"}},
])
def test_invalid_action_definitions_are_400(body):
    state = make_state()
    err = raises(400, state.actions.create, 777, "sandbox-dev-key", body)
    assert err.body["category"] == "VALIDATION_ERROR"
    assert state.actions.list(777, "sandbox-dev-key") == {"results": []}
