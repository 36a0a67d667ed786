"""Every answer HubSpot can give on the endpoints we call, and what it refers to — pure.

One table decides, for each endpoint we call, what an HTTP answer means: *what it refers
to* (one callback, this request, the access token, the whole portal, our app or
configuration, or HubSpot's side for the moment) and *what to do* (done, end that callback,
split the batch, refresh, wait, retry with backoff, hold the portal, the portal is revoked).
:func:`classify` is that table; the send policy (``send_policy.py``), the token store and the
OAuth install act on its :class:`Answer` and nowhere else is a status code interpreted.

Facts from ``../shared/docs/hubspot-protocol.md``: §5 callbacks (204; error body
``{category, message, context?, errors?}``; replies for completed/expired ids UNCERTAIN),
§6 OAuth token endpoint (400 ``BAD_REFRESH_TOKEN``/``invalid_grant``), §7 rate limits (429
body ``errorType: RATE_LIMIT`` with ``policyName`` ``DAILY`` or ``TEN_SECONDLY_ROLLING``; no
``Retry-After`` documented for API 429s), error handling (retry 502/503/504/521/523 after a
pause, 477 per its ``Retry-After``). Where HubSpot's answer is undocumented the row takes the
side that loses nothing: hold and look again rather than end a callback.

The table (``endpoint``: ``batch`` = ``POST …/callbacks/complete``, ``one`` =
``POST …/callbacks/{id}/complete``, ``token`` = ``POST /oauth/v3/token``, ``info`` =
``GET /oauth/v1/access-tokens/{token}``):

======================  =====================================  ==========  ===========================================
endpoint                answer                                 refers to   action
======================  =====================================  ==========  ===========================================
batch, one              2xx                                    request     ``done``: every callback released
batch, one              401                                    token       ``refresh`` once per run of 401s, then again
batch, one              403 ``MISSING_SCOPES`` (or a scope     portal      ``hold_portal``: no bisect, nothing ends;
                        named in ``errors[].context``)                     re-install or the hold's end lifts it
batch, one              403 other                              portal      ``hold_portal``
batch                   404                                    app         ``hold_portal`` (the batch path is not
                                                                           there: a retired ``HUBSPOT_CALLBACKS_API``)
one                     404 naming the callback id             callback    ``expired`` (HubSpot no longer knows it)
one                     404 naming no callback                 app         ``hold_portal`` (as for the batch path)
one                     410                                    callback    ``expired``
one                     400/409/422 "already completed"        callback    ``already_done`` (counts as released)
one                     400/409/422 "expired"/"not found"      callback    ``expired``
one                     400/409/422 other                      callback    ``failed`` (refused for good)
batch                   400/409/410/413/422                    request     ``split`` into halves to find the culprit
batch, one, token       429 ``policyName: DAILY``              portal      ``hold_portal`` until the next day (UTC)
batch, one, token,info  429 other / no policy                  portal      ``wait`` ``Retry-After`` s, else the
                                                                           ``X-HubSpot-RateLimit-Interval-Milliseconds``
                                                                           interval, else 10 s; no attempt spent
any                     477                                    portal      ``wait`` its ``Retry-After``
any                     5xx, 408, 425, timeout, no connection  transient   ``retry`` with backoff, then give up (the
                                                                           lease lapses; the queue counts a failure)
batch, one              other 4xx (405, 415, …)                app         ``hold_portal`` (our request is wrong)
token                   200                                    request     ``done``
token (refresh)         400 ``BAD_REFRESH_TOKEN``/             portal      ``revoked``: held until installed again
                        ``invalid_grant``
token (code exchange)   400 ``BAD_AUTH_CODE``/``invalid_grant`` request    ``failed``: the install link is spent
token                   400 ``BAD_CLIENT_ID``/``invalid_client``,  app     ``hold_portal`` (client id or secret wrong)
                        401, 403
token                   404                                    app         ``use_v1``: the v3 path is missing, use
                                                                           ``/oauth/v1/token`` (once); on v1: hold
token                   other 4xx                              app         ``hold_portal``
info                    200                                    request     ``done``
info                    401, 404                               request     ``failed``: the token is not valid
info                    other 4xx                              app         ``failed``
======================  =====================================  ==========  ===========================================

Size: over 300 lines because the table above and the one function that implements it stay
side by side; the rest is the answer's types and HubSpot's error-body parsing.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: HubSpot's rate-limit window for public apps is 10 s (protocol notes §7).
DEFAULT_RATE_WINDOW_S = 10.0
#: Longest wait a ``Retry-After`` may ask of us; longer ones are capped (a typo'd header
#: must not stall a portal for days).
MAX_WAIT_S = 3600.0


class Endpoint(enum.StrEnum):
    """The HubSpot endpoints we call."""

    COMPLETE_BATCH = "batch"   # POST /automation/v4/actions/callbacks/complete
    COMPLETE_ONE = "one"       # POST /automation/v4/actions/callbacks/{callbackId}/complete
    TOKEN = "token"            # noqa: S105  an endpoint's name: POST /oauth/v3/token (refresh or code exchange)
    TOKEN_INFO = "info"        # noqa: S105  an endpoint's name: GET /oauth/v1/access-tokens/{token}


class RefersTo(enum.StrEnum):
    """What an answer is about."""

    REQUEST = "request"       # this request as a whole (success, or a batch to split)
    CALLBACK = "callback"     # the one callback of a single completion
    TOKEN = "token"           # noqa: S105  a category's name: the access token
    PORTAL = "portal"         # this portal's use of the app (scopes, rate limits, revocation)
    APP = "app"               # our app or configuration (client id/secret, API paths, request shape)
    TRANSIENT = "transient"   # HubSpot's side, for now


class Action(enum.StrEnum):
    """What the caller does about an answer."""

    DONE = "done"
    ALREADY_DONE = "already_done"   # callback completed before: counts as released
    EXPIRED = "expired"             # HubSpot no longer knows the callback
    FAILED = "failed"               # refused for good
    SPLIT = "split"                 # batch refused: halve it to find the culprit(s)
    REFRESH = "refresh"             # refresh the access token, then retry
    WAIT = "wait"                   # wait ``wait_s`` (no attempt spent), then retry
    RETRY = "retry"                 # transient: retry with backoff, then give up
    HOLD_PORTAL = "hold_portal"     # stop calling for this portal for a while; keep every callback
    REVOKED = "revoked"             # refresh token dead: the portal waits for a re-install
    USE_V1 = "use_v1"               # the v3 token path is missing: use /oauth/v1/token


@dataclass(frozen=True, slots=True)
class Answer:
    """One classified answer.

    ``reason`` is a short text for logs, ``last_failure_reason`` and status pages (HubSpot's
    category and message, never a token); ``kind`` a bounded label for metrics;
    ``wait_s`` (seconds) for ``wait``; ``until_next_day`` for a DAILY hold;
    ``status`` the HTTP status (``None`` for a transport failure).
    """

    action: Action
    refers_to: RefersTo
    reason: str = ""
    kind: str = ""
    wait_s: float = 0.0
    until_next_day: bool = False
    status: int | None = None
    callback_ids: tuple[str, ...] = field(default=())

    @property
    def portal_wide(self) -> bool:
        """Whether the answer stops every call of the portal, not just this one."""
        return self.action in (Action.HOLD_PORTAL, Action.REVOKED)


def classify(
    endpoint: Endpoint, status: int, body: bytes | str | Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None, *, callback_ids: Sequence[str] = (),
    grant: str = "refresh_token", token_path: str = "v3",  # noqa: S107  an API version, not a secret
) -> Answer:
    """Classify an HTTP answer of ``endpoint`` (the table in this module's docstring).

    Args:
        status: the HTTP status.
        body: the response body (raw, or already parsed JSON); anything not a JSON object
            counts as no body.
        headers: response headers (case-insensitive mapping, e.g. ``httpx.Headers``).
        callback_ids: the callbacks the request completed (for ``one``: the one id).
        grant: for ``token``: ``refresh_token`` or ``authorization_code``.
        token_path: for ``token``: ``v3`` or ``v1``, the path that answered.
    Returns:
        The :class:`Answer`; never raises.
    """
    data = _json_object(body)
    headers = headers or {}
    if 200 <= status < 300:
        return Answer(Action.DONE, RefersTo.REQUEST, kind="ok", status=status)
    if status == 429:
        return _rate_limited(data, headers)
    if status == 477:
        return Answer(Action.WAIT, RefersTo.PORTAL, "HTTP 477: HubSpot asked to wait", "477",
                      wait_s=_retry_after_s(headers), status=status)
    if status >= 500 or status in (408, 425):
        return Answer(Action.RETRY, RefersTo.TRANSIENT, f"HTTP {status}{_category_suffix(data)}", "5xx", status=status)
    if endpoint is Endpoint.TOKEN:
        return _token_answer(status, data, grant, token_path)
    if endpoint is Endpoint.TOKEN_INFO:
        return Answer(Action.FAILED, RefersTo.REQUEST, f"HTTP {status}{_category_suffix(data)}: token not usable",
                      "info_refused", status=status)
    return _callbacks_answer(endpoint, status, data, callback_ids)


def transport_failure(description: str) -> Answer:
    """A call that got no HTTP answer (timeout, refused or broken connection): transient."""
    return Answer(Action.RETRY, RefersTo.TRANSIENT, description, "transport")


def next_day_hold(now: dt.datetime) -> dt.datetime:
    """When a DAILY hold ends: 00:05 UTC of the next day (HubSpot resets at the account's
    midnight, a time zone we do not know; protocol notes §7)."""
    return dt.datetime.combine(now.astimezone(dt.UTC).date() + dt.timedelta(days=1), dt.time(0, 5),
                               tzinfo=dt.UTC)


# -- rows ---------------------------------------------------------------------------------


def _callbacks_answer(endpoint: Endpoint, status: int, data: dict[str, Any], ids: Sequence[str]) -> Answer:
    category = str(data.get("category") or "")
    message = str(data.get("message") or "")
    text = f"HTTP {status}{_category_suffix(data)}"
    if status == 401:
        return Answer(Action.REFRESH, RefersTo.TOKEN, text, "401", status=status)
    if status == 403:
        scopes = _required_scopes(data)
        if category == "MISSING_SCOPES" or scopes:
            named = ", ".join(scopes) or "unknown"
            return Answer(Action.HOLD_PORTAL, RefersTo.PORTAL, f"HubSpot refuses the app: missing scopes ({named}); "
                          "the customer must install the app again", "missing_scopes", status=status)
        return Answer(Action.HOLD_PORTAL, RefersTo.PORTAL, f"HubSpot refuses the app: {text}", "forbidden", status=status)
    if endpoint is Endpoint.COMPLETE_BATCH:
        if status == 404:
            return _endpoint_missing(text, status)
        if status in (400, 409, 410, 413, 422):
            return Answer(Action.SPLIT, RefersTo.REQUEST, text, "batch_refused", status=status,
                          callback_ids=tuple(_named_callbacks(data, ids)))
        return Answer(Action.HOLD_PORTAL, RefersTo.APP, f"callbacks API refused our request: {text}", "request_refused",
                      status=status)
    # A single completion: is the answer about this callback?
    lowered = message.lower()
    about_it = bool(_named_callbacks(data, ids)) or any(i and i in message for i in ids)
    if status == 404:
        if about_it:
            return Answer(Action.EXPIRED, RefersTo.CALLBACK, text, "unknown_callback", status=status)
        return _endpoint_missing(text, status)
    if status == 410:
        return Answer(Action.EXPIRED, RefersTo.CALLBACK, text, "gone", status=status)
    if status in (400, 409, 422):
        if "already" in lowered:
            return Answer(Action.ALREADY_DONE, RefersTo.CALLBACK, text, "already_completed", status=status)
        if "expired" in lowered or "not found" in lowered:
            return Answer(Action.EXPIRED, RefersTo.CALLBACK, text, "expired", status=status)
        return Answer(Action.FAILED, RefersTo.CALLBACK, f"{text}: {message[:200]}".rstrip(": "), "refused", status=status)
    return Answer(Action.HOLD_PORTAL, RefersTo.APP, f"callbacks API refused our request: {text}", "request_refused",
                  status=status)


def _token_answer(status: int, data: dict[str, Any], grant: str, token_path: str) -> Answer:
    legacy = str(data.get("status") or "")
    error = str(data.get("error") or "")
    text = f"token endpoint: HTTP {status} {legacy or error or data.get('category') or ''}".rstrip()
    if status == 404:
        if token_path != "v1":  # noqa: S105  an API version, not a secret
            return Answer(Action.USE_V1, RefersTo.APP, text, "token_path_missing", status=status)
        return Answer(Action.HOLD_PORTAL, RefersTo.APP, text + " (no token endpoint at HUBSPOT_API_BASE)",
                      "token_path_missing", status=status)
    if status == 400 and (legacy in ("BAD_REFRESH_TOKEN", "BAD_AUTH_CODE") or error == "invalid_grant"):
        if grant == "refresh_token":
            return Answer(Action.REVOKED, RefersTo.PORTAL, "refresh token is invalid, expired or revoked",
                          "revoked", status=status)
        return Answer(Action.FAILED, RefersTo.REQUEST, "authorization code already used or expired",
                      "bad_code", status=status)
    if status in (401, 403) or legacy == "BAD_CLIENT_ID" or error in ("invalid_client", "unauthorized_client"):
        return Answer(Action.HOLD_PORTAL, RefersTo.APP, text + " (check HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET)",
                      "client_refused", status=status)
    return Answer(Action.HOLD_PORTAL, RefersTo.APP, text, "token_refused", status=status)


def _rate_limited(data: dict[str, Any], headers: Mapping[str, str]) -> Answer:
    policy = str(data.get("policyName") or "")
    if policy == "DAILY":
        return Answer(Action.HOLD_PORTAL, RefersTo.PORTAL, "HubSpot's daily API limit is reached", "daily_limit",
                      until_next_day=True, status=429)
    label = policy or "unnamed policy"
    return Answer(Action.WAIT, RefersTo.PORTAL, f"rate limited ({label})", "rate_limited",
                  wait_s=_retry_after_s(headers), status=429)


def _endpoint_missing(text: str, status: int) -> Answer:
    return Answer(Action.HOLD_PORTAL, RefersTo.APP, f"callbacks API answered {text}: path retired or wrong? "
                  "(check HUBSPOT_CALLBACKS_API and HUBSPOT_API_BASE)", "endpoint_missing", status=status)


def _retry_after_s(headers: Mapping[str, str]) -> float:
    """Seconds to wait: ``Retry-After`` (seconds) if given, else HubSpot's rate-limit interval
    header, else the 10 s window (protocol notes §7); at most :data:`MAX_WAIT_S`."""
    for header, scale in (("Retry-After", 1.0), ("X-HubSpot-RateLimit-Interval-Milliseconds", 0.001)):
        value = _header(headers, header)
        if value:
            try:
                seconds = float(value) * scale
            except ValueError:
                continue
            if seconds == seconds and seconds >= 0:  # not NaN
                return min(seconds, MAX_WAIT_S)
    return DEFAULT_RATE_WINDOW_S


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict: look case-insensitively
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _required_scopes(data: dict[str, Any]) -> list[str]:
    """Scopes named in ``errors[].context.requiredScopes`` (HubSpot's MISSING_SCOPES body)."""
    found: list[str] = []
    errors = data.get("errors")
    for error in errors if isinstance(errors, list) else []:
        context = error.get("context") if isinstance(error, dict) else None
        scopes = context.get("requiredScopes") if isinstance(context, dict) else None
        for scope in scopes if isinstance(scopes, list) else []:
            if isinstance(scope, str) and scope not in found:
                found.append(scope)
    return found


def _named_callbacks(data: dict[str, Any], ids: Sequence[str]) -> list[str]:
    """The callbacks of ``ids`` the error body names in ``context.callbackIds``."""
    context = data.get("context")
    named = context.get("callbackIds") if isinstance(context, dict) else None
    wanted = set(ids)
    return [i for i in named if isinstance(i, str) and i in wanted] if isinstance(named, list) else []


def _category_suffix(data: dict[str, Any]) -> str:
    category = data.get("category") or data.get("errorType")
    return f" {category}" if isinstance(category, str) and category else ""


def _json_object(body: bytes | str | Mapping[str, Any] | None) -> dict[str, Any]:
    if body is None:
        return {}
    if isinstance(body, Mapping):
        return dict(body)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
