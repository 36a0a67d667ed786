"""ASGI middleware: request bodies are admitted within the listener's body budget
(:class:`~throttled.web.edge_limits.BodyBudget`), counted by the bytes that arrive.

A request announcing a body first takes a small down payment (:data:`DOWN_PAYMENT_BYTES`, or
its whole size if smaller — a HubSpot webhook is about 1–2 KB, so it is covered at once);
each byte past it is reserved as it arrives, and everything is given back when the answer is
done. A request is answered ``503`` + ``Retry-After: 1`` (its connection then closed, its body
unread: ``unread_body.py``) when its announced size does not fit what is left of the budget,
or when the budget runs out while its body arrives. HubSpot retries a 5xx (protocol notes §3).

Why bytes, not announced sizes: a new-user trial held the whole budget with 256 request
heads announcing chunked bodies and sending none (70 bytes each), and every webhook got 503.
Now a head costs its down payment: the connection cap × 2 KiB stays below the budget.
Refusals are logged once a minute with their count (``http.refused``).
"""

from __future__ import annotations

import json

import structlog
import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    HTTPScope,
    Scope,
)

from throttled.logs import OncePer
from throttled.web.edge_limits import BodyBudget

log = structlog.get_logger("throttled.web.edge")

#: Bytes a request with a body reserves before any of it arrives.
DOWN_PAYMENT_BYTES = 2048
_BUSY = json.dumps({"error": "busy", "message": "too many request bodies in progress, retry later"}).encode()


def budget_bodies(app: ASGIFramework, budget: BodyBudget, max_body_bytes: int) -> ASGIFramework:
    """Wrap ``app`` so that every HTTP request announcing a body stays within ``budget``."""
    refusals = OncePer(60.0)

    async def refuse(send: ASGISendCallable) -> None:
        missed = refusals.due("body_budget", trio.current_time())
        if missed is not None:
            log.warning("http.refused", kind="body_budget", not_logged_since=missed,
                        note="request bodies in progress fill THROTTLED_BODY_BUDGET: answered 503")
        await _answer_busy(send)

    async def wrapped(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        announced = announced_body_size(scope, max_body_bytes) if scope["type"] == "http" else 0
        if announced == 0:
            await app(scope, receive, send)
            return
        held = min(announced, DOWN_PAYMENT_BYTES)
        if not budget.fits(announced) or not budget.reserve(held):
            await refuse(send)
            return
        received, answered = 0, False

        async def metered_receive() -> ASGIReceiveEvent:
            nonlocal held, received, answered
            message = await receive()
            if message["type"] == "http.request" and not answered:
                received += len(message.get("body", b""))
                if received > held:
                    if not budget.reserve(received - held):
                        answered = True
                        await refuse(send)
                        return {"type": "http.disconnect"}
                    held = received
            return message

        async def guarded_send(message: ASGISendEvent) -> None:
            if not answered:
                await send(message)

        try:
            await app(scope, metered_receive, guarded_send)
        finally:
            budget.release(held)

    return wrapped


async def _answer_busy(send: ASGISendCallable) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"retry-after", b"1"),
        (b"content-length", str(len(_BUSY)).encode())]})
    await send({"type": "http.response.body", "body": _BUSY, "more_body": False})


def announced_body_size(scope: HTTPScope, max_body_bytes: int) -> int:
    """Bytes ``scope``'s body may take: its ``Content-Length`` up to ``max_body_bytes`` (a
    larger one is refused by the app with 413 before any of it is read), ``max_body_bytes``
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
