"""ASGI middleware: a request's body is admitted only if the listener's body budget covers it
(:class:`~throttled.web.edge_limits.BodyBudget`).

The reservation is made before the app reads a byte of the body — the size the request
announces (``Content-Length``, capped at the body limit, or the body limit itself for a
chunked body) — and given back when the app's answer is done. A request the budget cannot
cover gets ``503`` with ``Retry-After: 1`` at once and its connection is closed
(``unread_body.py``): HubSpot retries a 5xx (protocol notes §3), and an attacker holding
bodies half-sent can hold at most the budget.
"""

from __future__ import annotations

import json

from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope

from throttled.web.edge_limits import BodyBudget

_BUSY = json.dumps({"error": "busy", "message": "too many request bodies in progress, retry later"}).encode()


def budget_bodies(app: ASGIFramework, budget: BodyBudget, max_body_bytes: int) -> ASGIFramework:
    """Wrap ``app`` so that every HTTP request announcing a body reserves it from ``budget``."""

    async def wrapped(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        size = announced_body_size(scope, max_body_bytes) if scope["type"] == "http" else 0
        if size == 0:
            await app(scope, receive, send)
            return
        if not budget.reserve(size):
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"), (b"retry-after", b"1"),
                (b"content-length", str(len(_BUSY)).encode())]})
            await send({"type": "http.response.body", "body": _BUSY, "more_body": False})
            return
        try:
            await app(scope, receive, send)
        finally:
            budget.release(size)

    return wrapped


def announced_body_size(scope: HTTPScope, max_body_bytes: int) -> int:
    """Bytes to reserve for ``scope``'s body: its ``Content-Length`` up to ``max_body_bytes``
    (a larger one is refused by the app with 413 before any of it is read), ``max_body_bytes``
    for a chunked body, 0 for none."""
    for name, value in scope.get("headers", []):
        name = name.lower()
        if name == b"transfer-encoding":
            return max_body_bytes
        if name == b"content-length":
            try:
                return min(max(int(value), 0), max_body_bytes)
            except ValueError:
                return max_body_bytes
    return 0
