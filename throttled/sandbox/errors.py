"""HubSpot-shaped error answers of the sandbox, built in one place.

Bodies follow ``shared/docs/hubspot-protocol.md``: the API error body of §5 (``status, message,
category, correlationId[, context]``), the OAuth error body of §6 (legacy ``status``/``message``
plus RFC 6749 ``error``/``error_description``) and the 429 body of §7 (``errorType``,
``policyName``). No body built here ever echoes a token, secret or developer key.
"""

from __future__ import annotations

import secrets
import uuid
from http import HTTPStatus
from typing import Any, Literal

TOKEN_BYTES = 96  # token_urlsafe(96) -> 128 chars; HubSpot's tokens are long (§6: allow ~300)

RatePolicy = Literal["TEN_SECONDLY_ROLLING", "DAILY"]
_RATE_MESSAGES: dict[RatePolicy, str] = {
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    "DAILY": "You have reached your daily limit.",  # §7, verbatim
}


class SandboxError(Exception):
    """A HubSpot-style error answer: HTTP ``status``, JSON ``body``, extra ``headers``.

    The repr names only the status and kind, never the body's values.
    """

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        kind = body.get("status") if body.get("status") != "error" else None
        super().__init__(status, kind or body.get("category") or body.get("errorType"))

    def __repr__(self) -> str:
        return f"SandboxError(status={self.status}, kind={self.args[1]!r})"


def api_error(category: str, message: str, **extra: Any) -> dict[str, Any]:
    """HubSpot's API error body (§5): status, message, category, correlationId (+ ``extra``)."""
    return {"status": "error", "message": message, "category": category, "correlationId": new_uuid(), **extra}


def invalid(message: str, **extra: Any) -> SandboxError:
    """A 400 ``VALIDATION_ERROR`` (§5 error body)."""
    return SandboxError(400, api_error("VALIDATION_ERROR", message, **extra))


def server_error(status: int) -> SandboxError:
    """A 5xx answer with HubSpot's error body; ``category`` is the status phrase, e.g.
    ``SERVICE_UNAVAILABLE`` for 503 (521/523 and other unnamed codes: ``INTERNAL_ERROR``)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Internal Error"
    return SandboxError(status, api_error(phrase.upper().replace(" ", "_"), f"{phrase} (sandbox fault)"))


def rate_limited(policy: RatePolicy, headers: dict[str, str]) -> SandboxError:
    """A 429 with §7's body for ``policy`` and the given rate headers."""
    return SandboxError(429, {
        "status": "error", "message": _RATE_MESSAGES[policy], "errorType": "RATE_LIMIT",
        "correlationId": new_uuid(), "policyName": policy, "requestId": new_uuid(),
    }, headers)


#: Named refusals of callback completions (fault ``callbacks_refusal``), each a HubSpot answer
#: that is about something other than a bad input.
CALLBACK_REFUSALS = ("missing_scopes", "forbidden", "retired_path", "unknown_callbacks", "gone",
                     "method_not_allowed", "unauthorized", "too_large", "wait_477")
#: Named refusals of the token endpoint (fault ``token_refusal``; ``rate_limited`` is the storm's).
TOKEN_REFUSALS = ("server_error", "daily_limit", "invalid_client", "retired_path", "rate_limited")
#: Named refusals of the token-info lookup (fault ``token_info_refusal``).
INFO_REFUSALS = ("not_found", "server_error", "rate_limited")

_NOT_FOUND_BODY = {"status": "error", "message": "The requested URL was not found on the server.", "category": "HTTP_ERROR"}


def callback_refusal(kind: str, via: str, ids: list[str]) -> SandboxError:
    """The answer of ``kind`` (one of :data:`CALLBACK_REFUSALS`) to a completion of ``ids``
    through the ``single`` or ``batch`` endpoint. Bodies are HubSpot's shapes (§5, §7); the
    MISSING_SCOPES body is the one HubSpot sends for a scope the app lacks."""
    if kind == "missing_scopes":
        return SandboxError(403, api_error(
            "MISSING_SCOPES", "This app hasn't been granted all required scopes to make this call.",
            errors=[{"message": "One or more of the following scopes are required.",
                     "context": {"requiredScopes": ["automation"]}}]))
    if kind == "forbidden":
        return SandboxError(403, api_error("FORBIDDEN", "This portal does not allow this app to complete callbacks."))
    if kind == "retired_path":
        return SandboxError(404, dict(_NOT_FOUND_BODY))  # what an unknown path answers
    if kind in ("unknown_callbacks", "gone"):
        status = 404 if kind == "unknown_callbacks" else 410
        if via == "single":
            return SandboxError(status, api_error("OBJECT_NOT_FOUND", f"Callback {ids[0]} not found",
                                                  context={"callbackIds": ids}))
        return invalid(f"{len(ids)} callback(s) in this batch are unknown or expired", context={"callbackIds": ids})
    if kind == "method_not_allowed":
        return SandboxError(405, {"status": "error", "message": "The method is not allowed for the requested URL.",
                                  "category": "HTTP_ERROR"})
    if kind == "unauthorized":
        return SandboxError(401, api_error("INVALID_AUTHENTICATION", "The app's access was revoked for this call."))
    if kind == "too_large" and via == "batch":
        return SandboxError(413, api_error("PAYLOAD_TOO_LARGE", "Request entity too large"))
    if kind == "wait_477":
        return SandboxError(477, api_error("MIGRATION_IN_PROGRESS", "Portal migration in progress"), {"Retry-After": "1"})
    raise ValueError(kind)


def token_refusal(kind: str) -> SandboxError:
    """The token endpoint's answer of ``kind`` (one of :data:`TOKEN_REFUSALS`)."""
    if kind == "server_error":
        return server_error(503)
    if kind in ("daily_limit", "rate_limited"):
        policy: RatePolicy = "DAILY" if kind == "daily_limit" else "TEN_SECONDLY_ROLLING"
        return rate_limited(policy, {})  # §7: no Retry-After documented
    if kind == "invalid_client":
        return oauth_fail("BAD_CLIENT_ID", "invalid_client", "missing or invalid client credentials")
    if kind == "retired_path":
        return SandboxError(404, dict(_NOT_FOUND_BODY))
    raise ValueError(kind)


def info_refusal(kind: str) -> SandboxError:
    """The token-info lookup's answer of ``kind`` (one of :data:`INFO_REFUSALS`)."""
    if kind == "not_found":
        return SandboxError(404, api_error("OBJECT_NOT_FOUND", "Token not found"))
    if kind == "server_error":
        return server_error(502)
    if kind == "rate_limited":
        return rate_limited("TEN_SECONDLY_ROLLING", {})
    raise ValueError(kind)


def oauth_fail(status: str, error: str, message: str, description: str | None = None) -> SandboxError:
    """A 400 with HubSpot's OAuth error body: legacy status/message plus RFC 6749 fields (§6)."""
    return SandboxError(400, {"status": status, "message": message, "correlationId": new_uuid(),
                              "error": error, "error_description": description or message})


def new_secret() -> str:
    """A fresh URL-safe token or code (128 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_uuid() -> str:
    """A fresh correlation/request id."""
    return str(uuid.uuid4())
