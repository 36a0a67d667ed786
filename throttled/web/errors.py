"""Map typed errors to HTTP answers, in one place.

=========================== ====== ==========================================
error                       status body
=========================== ====== ==========================================
InvalidInput                400    {"error": "invalid_input", "field", "message"}
SignatureError              401    {"error": "invalid_signature", "reason"}
InvalidState (OAuth)        400    {"error": "invalid_state"}
RequestEntityTooLarge       413    {"error": "body_too_large"}
DatabaseUnavailable         503    {"error": "unavailable"} + Retry-After
HubSpotError (OAuth calls)  502    {"error": "hubspot_error"}
sqlalchemy DataError        400    {"error": "invalid_input", "field": "request"}
a NUL in the path           404    {"error": "not_found"} (before any route runs)
anything else               500    {"error": "internal"}
=========================== ====== ==========================================
HubSpot retries 5xx answers for up to 3 days (protocol notes §3), so 503 during an outage
delays an enrollment and loses none.
"""

from __future__ import annotations

import sqlalchemy as sa
import structlog
import trio
from quart import Quart, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from throttled.db.engine import DatabaseUnavailable
from throttled.hubspot.errors import HubSpotError
from throttled.hubspot.oauth import InvalidState
from throttled.hubspot.signatures import SignatureError
from throttled.ingest.payload import InvalidInput
from throttled.logs import OncePer

log = structlog.get_logger("throttled.web")

RETRY_AFTER_S = 10


def register_error_handlers(app: Quart) -> None:
    """Install the handlers above on ``app``."""
    slow_bodies = OncePer(60.0)

    @app.before_request
    async def nul_in_path() -> tuple[Response, int] | None:
        # PostgreSQL text cannot hold NUL: an id of %00 reached a query and failed it (500).
        return (jsonify(error="not_found"), 404) if "\x00" in request.path else None

    @app.errorhandler(sa.exc.DataError)
    async def unstorable(exc: sa.exc.DataError) -> tuple[Response, int]:
        # A value PostgreSQL refuses (bad text, a number out of range) came from the request.
        log.warning("web.unstorable_input", path=request.path[:100].encode("unicode_escape").decode(),
                    sqlstate=getattr(exc.orig, "sqlstate", None))
        return jsonify(error="invalid_input", field="request", message="a value in the request cannot be stored"), 400

    @app.errorhandler(InvalidInput)
    async def invalid_input(exc: InvalidInput) -> tuple[Response, int]:
        return jsonify(error="invalid_input", field=exc.field, message=exc.message), 400

    @app.errorhandler(SignatureError)
    async def bad_signature(exc: SignatureError) -> tuple[Response, int]:
        return jsonify(error="invalid_signature", reason=exc.reason), 401

    @app.errorhandler(InvalidState)
    async def bad_state(exc: InvalidState) -> tuple[Response, int]:
        return jsonify(error="invalid_state", message=str(exc)), 400

    @app.errorhandler(DatabaseUnavailable)
    async def unavailable(exc: DatabaseUnavailable) -> tuple[Response, int, dict[str, str]]:
        return jsonify(error="unavailable", message="database unavailable, retry later"), 503, {"Retry-After": str(RETRY_AFTER_S)}

    @app.errorhandler(HubSpotError)
    async def hubspot_error(exc: HubSpotError) -> tuple[Response, int]:
        log.warning("web.hubspot_error", error=str(exc))
        return jsonify(error="hubspot_error", message=str(exc)), 502

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> tuple[Response, int] | tuple[Response, int, dict[str, str]]:
        if exc.code == 408:
            missed = slow_bodies.due("body_timeout", trio.current_time())
            if missed is not None:
                log.warning("http.refused", kind="body_timeout", not_logged_since=missed,
                            note="a request body slower than THROTTLED_READ_TIMEOUT: answered 408")
        if exc.code == 413:
            # The unread rest of the body is still on the connection: close it, or the
            # next request on this keep-alive connection would be read from the middle.
            return jsonify(error="body_too_large", limit_bytes=app.config["MAX_CONTENT_LENGTH"]), 413, {"Connection": "close"}
        return jsonify(error=(exc.name or "error").lower().replace(" ", "_")), exc.code or 500

    @app.errorhandler(Exception)
    async def internal(exc: Exception) -> tuple[Response, int]:
        log.error("web.internal_error", error=type(exc).__name__)  # the message may quote input
        return jsonify(error="internal"), 500
