"""The answer table (``throttled/hubspot/answers.py``), row by row: each HubSpot answer on each
endpoint we call, what it refers to and what is done about it. Bodies are HubSpot's shapes
(protocol notes §5–§7); the sandbox's faults produce the same bodies over HTTP."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from throttled.hubspot.answers import (
    DEFAULT_RATE_WINDOW_S,
    Action,
    Endpoint,
    RefersTo,
    classify,
    next_day_hold,
    transport_failure,
)

BATCH, ONE, TOKEN, INFO = Endpoint.COMPLETE_BATCH, Endpoint.COMPLETE_ONE, Endpoint.TOKEN, Endpoint.TOKEN_INFO
CB = "ap-4455667-56776413549-7-0"
MISSING_SCOPES = {"status": "error", "category": "MISSING_SCOPES", "message": "This app hasn't been granted all required scopes",
                  "errors": [{"context": {"requiredScopes": ["automation"]}}]}
TEN_SECONDLY = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}
DAILY = {"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
         "policyName": "DAILY"}


def _error(category: str, message: str, **extra) -> dict:
    return {"status": "error", "category": category, "message": message, "correlationId": "c", **extra}


# (endpoint, status, body, headers, callback ids) -> (action, refers to, kind)
ROWS = [
    ("batch 204", BATCH, 204, None, {}, [CB, "x"], Action.DONE, RefersTo.REQUEST, "ok"),
    ("one 204", ONE, 204, None, {}, [CB], Action.DONE, RefersTo.REQUEST, "ok"),
    ("batch 401", BATCH, 401, _error("INVALID_AUTHENTICATION", "expired"), {}, [CB, "x"], Action.REFRESH, RefersTo.TOKEN, "401"),
    ("one 401", ONE, 401, None, {}, [CB], Action.REFRESH, RefersTo.TOKEN, "401"),
    ("batch 403 missing scopes", BATCH, 403, MISSING_SCOPES, {}, [CB, "x"],
     Action.HOLD_PORTAL, RefersTo.PORTAL, "missing_scopes"),
    ("one 403 missing scopes", ONE, 403, MISSING_SCOPES, {}, [CB], Action.HOLD_PORTAL, RefersTo.PORTAL, "missing_scopes"),
    ("403 naming scopes only", BATCH, 403, {"errors": [{"context": {"requiredScopes": ["automation"]}}]}, {}, [CB, "x"],
     Action.HOLD_PORTAL, RefersTo.PORTAL, "missing_scopes"),
    ("batch 403 other", BATCH, 403, _error("FORBIDDEN", "no"), {}, [CB, "x"], Action.HOLD_PORTAL, RefersTo.PORTAL, "forbidden"),
    ("batch 404", BATCH, 404, _error("OBJECT_NOT_FOUND", "resource not found"), {}, [CB, "x"],
     Action.HOLD_PORTAL, RefersTo.APP, "endpoint_missing"),
    ("batch 404 html", BATCH, 404, b"<html>Not Found</html>", {}, [CB, "x"],
     Action.HOLD_PORTAL, RefersTo.APP, "endpoint_missing"),
    ("one 404 naming the callback", ONE, 404, _error("OBJECT_NOT_FOUND", f"Callback {CB} not found"), {}, [CB],
     Action.EXPIRED, RefersTo.CALLBACK, "unknown_callback"),
    ("one 404 in context", ONE, 404, _error("OBJECT_NOT_FOUND", "not found", context={"callbackIds": [CB]}), {}, [CB],
     Action.EXPIRED, RefersTo.CALLBACK, "unknown_callback"),
    ("one 404 naming nothing", ONE, 404, _error("OBJECT_NOT_FOUND", "resource not found"), {}, [CB],
     Action.HOLD_PORTAL, RefersTo.APP, "endpoint_missing"),
    ("one 410", ONE, 410, None, {}, [CB], Action.EXPIRED, RefersTo.CALLBACK, "gone"),
    ("one 400 already", ONE, 400, _error("VALIDATION_ERROR", f"Callback {CB} has already been completed"), {}, [CB],
     Action.ALREADY_DONE, RefersTo.CALLBACK, "already_completed"),
    ("one 409 already", ONE, 409, _error("CONFLICT", "already completed"), {}, [CB], Action.ALREADY_DONE, RefersTo.CALLBACK,
     "already_completed"),
    ("one 400 expired", ONE, 400, _error("VALIDATION_ERROR", "callback expired"), {}, [CB], Action.EXPIRED, RefersTo.CALLBACK,
     "expired"),
    ("one 400 other", ONE, 400, _error("VALIDATION_ERROR", f"Callback {CB} could not be completed"), {}, [CB],
     Action.FAILED, RefersTo.CALLBACK, "refused"),
    ("one 422", ONE, 422, None, {}, [CB], Action.FAILED, RefersTo.CALLBACK, "refused"),
    ("batch 400", BATCH, 400, _error("VALIDATION_ERROR", "1 callback(s) could not be completed"), {}, [CB, "x"],
     Action.SPLIT, RefersTo.REQUEST, "batch_refused"),
    ("batch 413", BATCH, 413, None, {}, [CB, "x"], Action.SPLIT, RefersTo.REQUEST, "batch_refused"),
    ("batch 429 daily", BATCH, 429, DAILY, {}, [CB, "x"], Action.HOLD_PORTAL, RefersTo.PORTAL, "daily_limit"),
    ("one 429 ten-secondly", ONE, 429, TEN_SECONDLY, {}, [CB], Action.WAIT, RefersTo.PORTAL, "rate_limited"),
    ("token 429 ten-secondly", TOKEN, 429, TEN_SECONDLY, {}, [], Action.WAIT, RefersTo.PORTAL, "rate_limited"),
    ("token 429 daily", TOKEN, 429, DAILY, {}, [], Action.HOLD_PORTAL, RefersTo.PORTAL, "daily_limit"),
    ("info 429", INFO, 429, TEN_SECONDLY, {}, [], Action.WAIT, RefersTo.PORTAL, "rate_limited"),
    ("batch 477", BATCH, 477, None, {"Retry-After": "3"}, [CB, "x"], Action.WAIT, RefersTo.PORTAL, "477"),
    ("batch 503", BATCH, 503, _error("SERVICE_UNAVAILABLE", "down"), {}, [CB, "x"], Action.RETRY, RefersTo.TRANSIENT, "5xx"),
    ("one 521", ONE, 521, None, {}, [CB], Action.RETRY, RefersTo.TRANSIENT, "5xx"),
    ("batch 408", BATCH, 408, None, {}, [CB, "x"], Action.RETRY, RefersTo.TRANSIENT, "5xx"),
    ("token 502", TOKEN, 502, None, {}, [], Action.RETRY, RefersTo.TRANSIENT, "5xx"),
    ("batch 405", BATCH, 405, None, {}, [CB, "x"], Action.HOLD_PORTAL, RefersTo.APP, "request_refused"),
    ("one 415", ONE, 415, None, {}, [CB], Action.HOLD_PORTAL, RefersTo.APP, "request_refused"),
    ("token 200", TOKEN, 200, {"access_token": "a"}, {}, [], Action.DONE, RefersTo.REQUEST, "ok"),
    ("token bad refresh token", TOKEN, 400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token"},
     {}, [], Action.REVOKED, RefersTo.PORTAL, "revoked"),
    ("token invalid_grant", TOKEN, 400, {"error": "invalid_grant"}, {}, [], Action.REVOKED, RefersTo.PORTAL, "revoked"),
    ("token bad client", TOKEN, 400, {"status": "BAD_CLIENT_ID", "error": "invalid_client"}, {}, [],
     Action.HOLD_PORTAL, RefersTo.APP, "client_refused"),
    ("token 401", TOKEN, 401, None, {}, [], Action.HOLD_PORTAL, RefersTo.APP, "client_refused"),
    ("token 404 on v3", TOKEN, 404, None, {}, [], Action.USE_V1, RefersTo.APP, "token_path_missing"),
    ("token 400 other", TOKEN, 400, {"status": "BAD_GRANT_TYPE"}, {}, [], Action.HOLD_PORTAL, RefersTo.APP, "token_refused"),
    ("info 200", INFO, 200, {"hub_id": 1}, {}, [], Action.DONE, RefersTo.REQUEST, "ok"),
    ("info 404", INFO, 404, _error("OBJECT_NOT_FOUND", "Token not found"), {}, [], Action.FAILED, RefersTo.REQUEST,
     "info_refused"),
]


@pytest.mark.parametrize(("endpoint", "status", "body", "headers", "ids", "action", "refers_to", "kind"),
                         [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_each_row(endpoint, status, body, headers, ids, action, refers_to, kind):
    answer = classify(endpoint, status, body, headers, callback_ids=ids)
    assert (answer.action, answer.refers_to, answer.kind) == (action, refers_to, kind)
    assert answer.status == status


def test_token_404_on_v1_holds_and_a_spent_code_fails_the_install():
    assert classify(TOKEN, 404, None, token_path="v1").action is Action.HOLD_PORTAL
    spent = classify(TOKEN, 400, {"status": "BAD_AUTH_CODE", "error": "invalid_grant"}, grant="authorization_code")
    assert (spent.action, spent.kind) == (Action.FAILED, "bad_code")


@pytest.mark.parametrize(("headers", "wait_s"), [
    ({}, DEFAULT_RATE_WINDOW_S),                                     # §7: no Retry-After documented
    ({"Retry-After": "3"}, 3.0),
    ({"retry-after": "2.5"}, 2.5),                                   # header names are case-insensitive
    ({"X-HubSpot-RateLimit-Interval-Milliseconds": "1000"}, 1.0),
    ({"Retry-After": "soon", "X-HubSpot-RateLimit-Interval-Milliseconds": "2000"}, 2.0),
    ({"Retry-After": "99999999"}, 3600.0),                           # capped
    ({"Retry-After": "nan"}, DEFAULT_RATE_WINDOW_S),
])
def test_wait_comes_from_retry_after_then_the_interval_header_then_ten_seconds(headers, wait_s):
    assert classify(BATCH, 429, TEN_SECONDLY, httpx.Headers(headers)).wait_s == wait_s
    assert classify(BATCH, 429, TEN_SECONDLY, headers).wait_s == wait_s


def test_missing_scopes_names_them_and_tells_what_fixes_it():
    answer = classify(BATCH, 403, MISSING_SCOPES, callback_ids=[CB, "x"])
    assert "automation" in answer.reason and "install" in answer.reason and answer.portal_wide


def test_only_daily_holds_for_the_day():
    assert classify(BATCH, 429, DAILY).until_next_day
    assert not classify(BATCH, 429, TEN_SECONDLY).until_next_day
    assert not classify(BATCH, 429, {"errorType": "RATE_LIMIT", "policyName": "SECONDLY"}).until_next_day
    assert next_day_hold(dt.datetime(2026, 3, 2, 23, 59, tzinfo=dt.UTC)) == \
        dt.datetime(2026, 3, 3, 0, 5, tzinfo=dt.UTC)


def test_a_refused_batch_names_the_callbacks_the_body_names():
    answer = classify(BATCH, 400, _error("VALIDATION_ERROR", "x", context={"callbackIds": ["b", "zz"]}),
                      callback_ids=["a", "b", "c"])
    assert answer.callback_ids == ("b",)


def test_transport_failures_are_transient():
    answer = transport_failure("POST /automation/v4/actions/callbacks/complete: timed out")
    assert (answer.action, answer.refers_to, answer.status) == (Action.RETRY, RefersTo.TRANSIENT, None)


def test_no_reason_quotes_a_token():
    token = "CKr" + "x" * 120
    answer = classify(INFO, 404, {"message": f"Token {token} not found", "category": "OBJECT_NOT_FOUND"})
    assert token not in answer.reason
