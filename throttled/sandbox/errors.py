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
