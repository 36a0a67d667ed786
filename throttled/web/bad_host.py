"""ASGI middleware: a ``Host`` Werkzeug cannot encode is a ``400``, not a silent ``500``.

Quart builds its URL adapter before any error handler runs; Werkzeug's ``Map.bind`` encodes
the host name with IDNA and raises ``BadHost`` on an empty or over-long label (``a..b``, a
64-character label). Raised there, it escaped every handler: Hypercorn answered 500 with an
empty body and nothing was logged (a new-user trial). This checks the same thing first,
the same way (Werkzeug 3's ``Map.bind``: lower-case, drop the port, ``encode("idna")``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import structlog
import trio
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

from throttled.logs import OncePer

log = structlog.get_logger("throttled.web.edge")
_BODY = json.dumps({"error": "invalid_host", "message": "the Host header is not a valid host name"}).encode()


def refuse_bad_host(app: ASGIFramework) -> ASGIFramework:
    """Wrap ``app``: HTTP requests whose ``Host`` fails IDNA encoding get 400."""
    refusals = OncePer(60.0)

    async def wrapped(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "http" and not host_encodes(_host(scope["headers"])):
            missed = refusals.due("invalid_host", trio.current_time())
            if missed is not None:
                log.warning("http.refused", kind="invalid_host", not_logged_since=missed)
            await send({"type": "http.response.start", "status": 400, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]})
            await send({"type": "http.response.body", "body": _BODY, "more_body": False})
            return
        await app(scope, receive, send)

    return wrapped


def host_encodes(host: str) -> bool:
    """Whether Werkzeug can bind a URL map to ``host`` (``"a..b"`` cannot)."""
    name = host.lower().partition(":")[0]
    try:
        name.encode("idna")
    except UnicodeError:
        return False
    return True


def _host(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == b"host":
            return str(value.decode("latin-1"))
    return ""
