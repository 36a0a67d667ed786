"""Fault rules of the HubSpot sandbox, driven with plain calls and explicit ``now`` (epoch seconds)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from throttled.cli import main
from throttled.sandbox.faults import Faults
from throttled.sandbox.ratewindow import max_in_window
from throttled.sandbox.state import (
    SandboxConfig,
    SandboxError,
    SandboxState,
    TokenGrant,
)

REDIRECT = "http://localhost:8080/oauth/callback"
T0 = 1_700_000_000.0
PORTAL = 62515


def make_state(**faults) -> SandboxState:
    config = SandboxConfig(client_id="cid", client_secret="csecret", app_id=777)
    return SandboxState(config, Faults(**faults))


def install(state: SandboxState, now: float = T0) -> TokenGrant:
    code = state.authorize("cid", REDIRECT, None, now)
    return state.exchange_code("cid", "csecret", REDIRECT, code, now)


def raises(status: int, fn, *args, **kwargs) -> SandboxError:
    with pytest.raises(SandboxError) as info:
        fn(*args, **kwargs)
    assert info.value.status == status, info.value.body
    return info.value


def item(callback_id: str) -> dict:
    return {"callbackId": callback_id, "outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": {}}


def outcomes(seed: int, n: int = 400) -> list[int]:
    """Statuses of ``n`` single completes under a 30 % error rate, 0.1 s apart (inside the rate limit)."""
    state = make_state(error_rate=0.3, seed=seed)
    token = install(state).access_token
    statuses = []
    for i in range(n):
        try:
            state.complete(token, item("x"), T0 + i * 0.1, callback_id=f"cb-{i}")
            statuses.append(204)
        except SandboxError as error:
            statuses.append(error.status)
    return statuses


# --- Faults: defaults, JSON, validation -----------------------------------------------------


def test_defaults_are_all_off():
    faults = Faults()
    assert faults.to_json() == {
        "seed": 0, "error_rate": 0.0, "error_status": 503, "latency_s": 0.0, "stall_s": 0.0,
        "rate_limit_storm": 0, "daily_limit": False, "poison_callback_ids": [], "token_lifetime_s": None,
        "callbacks_refusal": None, "token_rate_limit_storm": 0, "token_refusal": None, "token_latency_s": 0.0,
        "token_info_refusal": None}
    assert faults.rate_limit_policy() is None and not faults.draw_server_error() and faults.delay_s() == 0
    assert faults.token_refusal_now() is None


def test_merged_converts_and_leaves_the_original_alone():
    base = Faults()
    merged = base.merged({"poison_callback_ids": ["b", "a"], "latency_s": 1, "token_lifetime_s": 5,
                          "daily_limit": True})
    assert merged.poison_callback_ids == {"a", "b"} and merged.to_json()["poison_callback_ids"] == ["a", "b"]
    assert isinstance(merged.latency_s, float) and merged.token_lifetime_s == 5.0
    assert base == Faults()
    assert merged.merged({"token_lifetime_s": None}).token_lifetime_s is None
    assert json.loads(json.dumps(merged.to_json())) == merged.to_json()


@pytest.mark.parametrize("changes", [
    {"nope": 1}, {"seed": "1"}, {"seed": True}, {"error_rate": 1.5}, {"error_rate": -0.1},
    {"error_rate": True}, {"error_rate": float("nan")}, {"error_status": 404}, {"error_status": 503.0},
    {"latency_s": -1}, {"stall_s": 1e9}, {"rate_limit_storm": -1}, {"rate_limit_storm": 1.5},
    {"daily_limit": 1}, {"poison_callback_ids": "cb-1"}, {"poison_callback_ids": [1]},
    {"poison_callback_ids": [""]}, {"token_lifetime_s": 0}, {"token_lifetime_s": "5"},
])
def test_merged_rejects_bad_values_with_400_naming_the_field(changes):
    with pytest.raises(SandboxError) as info:
        Faults().merged(changes)
    assert info.value.status == 400 and info.value.body["category"] == "VALIDATION_ERROR"
    assert info.value.body["message"].startswith(next(iter(changes)))


def test_merged_rejects_a_non_object():
    raises(400, Faults().merged, ["error_rate"])


# --- error rate -----------------------------------------------------------------------------


def test_seeded_error_rate_is_reproducible_and_near_its_share():
    first, again, other = outcomes(seed=7), outcomes(seed=7), outcomes(seed=8)
    assert first == again and first != other
    assert set(first) == {204, 503}
    assert 0.22 < first.count(503) / len(first) < 0.38


def test_server_error_records_nothing_and_carries_rate_headers():
    state = make_state(error_rate=1.0, error_status=502)
    grant = install(state)
    err = raises(502, state.complete, grant.access_token, {"inputs": [item("a"), item("b")]}, T0)
    assert err.body["status"] == "error" and err.body["category"] == "BAD_GATEWAY" and err.body["correlationId"]
    assert err.headers["X-HubSpot-RateLimit-Remaining"] == "109"  # it reached HubSpot: counted in the window
    assert grant.access_token not in json.dumps(err.body) + repr(err)
    raises(502, state.complete, grant.access_token, item("a"), T0, callback_id="a")
    assert state.completions == [] and state.rate_limited == 0
    state.set_faults({"error_status": 521})
    assert raises(521, state.complete, grant.access_token, item("a"), T0, callback_id="a").body["category"] == \
        "INTERNAL_ERROR"
    state.clear_faults()
    state.complete(grant.access_token, {"inputs": [item("a"), item("b")]}, T0)
    assert len(state.completions) == 2


def test_set_faults_restarts_draws_from_seed_and_keeps_faults_on_bad_input():
    state = make_state()
    first = state.set_faults({"error_rate": 0.5, "seed": 3})
    draws = [first.draw_server_error() for _ in range(20)]
    again = state.set_faults({"latency_s": 0.0})
    assert [again.draw_server_error() for _ in range(20)] == draws
    raises(400, state.set_faults, {"error_rate": 2})
    assert state.faults is again


# --- rate faults ----------------------------------------------------------------------------


def test_storm_counts_down_exactly_and_is_not_counted_in_the_window():
    state = make_state(rate_limit_storm=3)
    token = install(state).access_token
    for n in range(3):
        err = raises(429, state.complete, token, item("a"), T0 + n, callback_id="a")
        assert err.body["policyName"] == "TEN_SECONDLY_ROLLING" and err.body["errorType"] == "RATE_LIMIT"
        assert err.headers["X-HubSpot-RateLimit-Remaining"] == "0"
        assert state.faults.rate_limit_storm == 2 - n
    headers = state.complete(token, item("a"), T0 + 3, callback_id="a")
    assert headers["X-HubSpot-RateLimit-Remaining"] == "109"
    assert state.rate_limited == 3 and state.request_times(PORTAL) == [T0 + 3]


def test_storm_also_hits_token_lookup_but_not_unauthenticated_requests():
    state = make_state(rate_limit_storm=1)
    token = install(state).access_token
    raises(401, state.complete, "nope", item("a"), T0, callback_id="a")
    raises(404, state.access_token_info, "nope", T0)
    assert state.faults.rate_limit_storm == 1
    raises(429, state.access_token_info, token, T0)
    assert state.access_token_info(token, T0)[0]["hub_id"] == PORTAL


def test_daily_limit_until_turned_off_and_storm_waits():
    state = make_state(daily_limit=True, rate_limit_storm=1)
    token = install(state).access_token
    for n in range(3):
        err = raises(429, state.complete, token, {"inputs": [item("a")]}, T0 + n)
        assert err.body["policyName"] == "DAILY" and err.body["message"] == "You have reached your daily limit."
        assert err.headers["X-HubSpot-RateLimit-Remaining"] == "110"  # the window itself is empty
    assert state.faults.rate_limit_storm == 1 and state.request_times(PORTAL) == []
    state.set_faults({"daily_limit": False})
    assert raises(429, state.complete, token, {"inputs": [item("a")]}, T0).body["policyName"] == \
        "TEN_SECONDLY_ROLLING"
    state.complete(token, {"inputs": [item("a")]}, T0)
    assert state.rate_limited == 4 and len(state.completions) == 1


# --- poison ids -----------------------------------------------------------------------------


def test_poison_rejects_the_whole_batch_naming_the_ids():
    state = make_state(poison_callback_ids={"bad-2", "bad-1", "elsewhere"})
    token = install(state).access_token
    state.complete(token, {"inputs": [item("done")]}, T0)
    batch = {"inputs": [item("ok"), item("bad-2"), item("done"), item("bad-1")]}
    err = raises(400, state.complete, token, batch, T0)
    assert err.body["category"] == "VALIDATION_ERROR"
    assert err.body["context"] == {"callbackIds": ["bad-1", "bad-2"]}
    assert err.body["message"] == "2 callback(s) in this batch could not be completed"
    assert [c["callbackId"] for c in state.completions] == ["done"]
    err = raises(400, state.complete, token, item("x"), T0, callback_id="bad-1")
    assert err.body["message"] == "Callback bad-1 could not be completed"
    assert err.body["context"] == {"callbackIds": ["bad-1"]}
    state.complete(token, {"inputs": [item("ok")]}, T0)
    assert [c["callbackId"] for c in state.completions] == ["done", "ok"]


# --- early token expiry ---------------------------------------------------------------------


def test_tokens_issued_under_the_fault_expire_early_but_announce_the_usual_lifetime():
    state = make_state()
    before = install(state)
    state.set_faults({"token_lifetime_s": 5})
    early = install(state)
    assert early.expires_in == 1800 and early.to_json("v3")["expires_in"] == 1800
    assert state.authenticate(early.access_token, T0 + 4.9) == PORTAL
    raises(401, state.authenticate, early.access_token, T0 + 5)
    refreshed = state.refresh("cid", "csecret", early.refresh_token, T0 + 10)
    raises(401, state.authenticate, refreshed.access_token, T0 + 15)
    assert state.authenticate(before.access_token, T0 + 1000) == PORTAL  # issued before: unaffected
    state.clear_faults()
    late = state.refresh("cid", "csecret", early.refresh_token, T0 + 20)
    assert state.authenticate(late.access_token, T0 + 1000) == PORTAL


# --- delays ---------------------------------------------------------------------------------


def test_callback_delay_is_latency_plus_stall():
    state = make_state(latency_s=0.25, stall_s=30)
    assert state.callback_delay_s() == 30.25
    assert make_state().callback_delay_s() == 0


# --- the request log and max_in_window ------------------------------------------------------


@pytest.mark.parametrize(("times", "expected"), [
    ([], 0), ([5.0], 1), ([0.0, 10.0], 1), ([0.0, 9.999], 2), ([10.0, 0.0, 5.0], 2),
    ([0.0, 5.0, 10.0, 15.0], 2), ([0.0, 0.0, 0.0, 10.0], 3), ([0.0, 0.001, 10.0, 10.0005], 3),
])
def test_max_in_window_boundaries(times, expected):
    assert max_in_window(times, 10.0) == expected


@given(st.lists(st.integers(0, 100), max_size=40), st.integers(1, 20))
def test_max_in_window_matches_brute_force(ticks, interval):
    times = [t * 0.5 for t in ticks]
    brute = max((sum(1 for u in times if t - interval < u <= t) for t in times), default=0)
    assert max_in_window(times, float(interval)) == brute


def test_request_log_and_max_in_window_follow_the_accepted_requests():
    state = SandboxState(SandboxConfig(client_id="cid", client_secret="csecret", app_id=777, rate_limit_max=3))
    token = install(state).access_token
    for t in (0.0, 1.0, 9.999):
        state.access_token_info(token, T0 + t)
    raises(429, state.access_token_info, token, T0 + 9.9995)  # full: not logged
    state.access_token_info(token, T0 + 10.0)  # T0 has just left the window
    assert state.request_times(PORTAL) == [T0, T0 + 1.0, T0 + 9.999, T0 + 10.0]
    assert state.stats()["max_in_window"] == {str(PORTAL): 3}
    assert state.request_times(4455667) == []


# --- the CLI's --faults ---------------------------------------------------------------------


@pytest.mark.parametrize(("value", "said"), [("{x", "not JSON"), ('{"error_rate": 2}', "error_rate")])
def test_cli_refuses_bad_faults_before_serving(value, said):
    result = CliRunner().invoke(main, ["sandbox", "--faults", value])
    assert result.exit_code == 2 and said in result.output


# --- refusals of the answer table's rows ------------------------------------------------------


def test_named_refusals_are_validated():
    assert Faults().merged({"callbacks_refusal": "missing_scopes"}).callbacks_refusal == "missing_scopes"
    raises(400, Faults().merged, {"callbacks_refusal": "nonsense"})
    raises(400, Faults().merged, {"token_refusal": 503})
    raises(400, Faults().merged, {"token_info_refusal": "maybe"})


def test_token_storm_counts_down_and_a_standing_refusal_wins():
    faults = Faults(token_rate_limit_storm=2)
    assert [faults.token_refusal_now() for _ in range(3)] == ["rate_limited", "rate_limited", None]
    faults = Faults(token_refusal="server_error", token_rate_limit_storm=1)
    assert faults.token_refusal_now() == "server_error" and faults.token_rate_limit_storm == 1
