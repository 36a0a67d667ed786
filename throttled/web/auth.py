"""The bearer check of the operator and config APIs (``THROTTLED_ADMIN_TOKEN``), once.

No token configured: the routes answer 404, as if they did not exist. Else every request
needs ``Authorization: Bearer <token>``, the scheme matched case-insensitively (RFC 7235
§2.1) and the token in constant time; anything else is a 401 with ``WWW-Authenticate``.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from quart import abort, jsonify, request


def bearer_guard(token: str | None) -> Callable[[], Awaitable[Any]]:
    """A ``before_request`` handler enforcing ``token`` (see the module docstring)."""

    async def authorize() -> Any:
        if not token:
            abort(404)
        if not bearer_matches(request.headers.get("Authorization", ""), token):
            return jsonify(error="unauthorized", message="a valid bearer token is required"), 401, {
                "WWW-Authenticate": "Bearer"}
        return None

    return authorize


def bearer_matches(header: str, token: str) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` as a bearer token."""
    scheme, _, given = header.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
