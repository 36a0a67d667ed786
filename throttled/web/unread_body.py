"""ASGI middleware: an answer given before the request's body was read whole carries
``Connection: close``.

Hypercorn cannot keep such a connection (the rest of the body is still on the wire), so it
closes it after the answer — but without saying so, a client keeps the connection in its pool
and its next request fails with "server disconnected" (RFC 9112 §9.6: a server that closes
should send ``close``). Found by the reliability suite's hostile-input run and a new-user
trial: a 405, 404, 401 or 408 answered before the body arrived.
"""

from __future__ import annotations

from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

from throttled.web.body_budget import announced_body_size


def close_if_body_unread(app: ASGIFramework) -> ASGIFramework:
    """Wrap ``app``: on HTTP requests that announce a body (``Content-Length`` > 0 or a
    ``Transfer-Encoding``), add ``connection: close`` to a response started before the app
    received the body's last part. Other requests and the app's own headers pass unchanged."""

    async def wrapped(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http" or announced_body_size(scope, 1) == 0:
            await app(scope, receive, send)
            return
        body_done = False

        async def tracked_receive() -> ASGIReceiveEvent:
            nonlocal body_done
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_done = True
            return message

        async def tracked_send(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.start" and not body_done:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await app(scope, tracked_receive, tracked_send)

    return wrapped
