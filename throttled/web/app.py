"""The HTTP surface (Quart-Trio): HubSpot's action webhook, the OAuth install, health.

Routes kept from the original app:

- ``POST /api/hubspot/action`` — verify the signature on the raw body, parse, hand to the
  batcher, answer ``BLOCK`` only after the commit (invariant 1) — or, for a webhook HubSpot
  sent again after we completed its callback, what the completion said (``SUCCESS``).
- ``GET /api/oauth/install`` and ``GET /api/oauth/callback``: the install
  (``web/oauth_routes.py``).
- ``GET /healthz`` (process alive), ``GET /readyz`` (database reachable).
- ``GET/PUT/DELETE /api/config/{portal_id}/{action_id}`` — operator overrides
  (``web/config_api.py``, bearer token) — only with ``THROTTLED_PUBLIC_CONFIG_API``; the admin
  listener always serves it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa
import structlog
import trio
from quart import Response, jsonify
from quart.typing import ResponseReturnValue
from quart_trio import QuartTrio

from throttled.clock import Clock
from throttled.db.engine import Database
from throttled.hubspot import outputs
from throttled.hubspot.client import HubSpotClient
from throttled.hubspot.signatures import SignatureError
from throttled.hubspot.tokens import TokenStore
from throttled.ingest.batcher import Batcher
from throttled.ingest.holds import QUEUE_TOO_LONG, RELEASE_AFTER_TOO_LATE
from throttled.ingest.named import THROTTLE_DELETED, THROTTLE_INACTIVE, THROTTLE_UNKNOWN
from throttled.ingest.payload import InvalidInput, parse_enrollment
from throttled.logs import OncePer
from throttled.service.metrics import Metrics
from throttled.states import ExecutionState
from throttled.web.config_api import config_blueprint
from throttled.web.customer.routes import customer_blueprint
from throttled.web.errors import RETRY_AFTER_S, register_error_handlers
from throttled.web.hubspot_signed import RefusalLog, signed_body
from throttled.web.hypercorn_patch import READ_TIMEOUT_S
from throttled.web.oauth_routes import CALLBACKS_PER_MINUTE, oauth_blueprint
from throttled.web.options_route import options_blueprint

log = structlog.get_logger("throttled.web")

#: Default of ``THROTTLED_MAX_BODY``: bodies above it are refused with 413 before being read
#: whole (a larger Content-Length at once, a chunked body as soon as it passes the limit).
MAX_BODY_BYTES = 64 * 1024


@dataclass
class ServiceState:
    """Mutable switches the daemon flips while it runs."""

    stopping: bool = False  # graceful shutdown: new webhooks get 503 + Retry-After


@dataclass(frozen=True)
class WebDeps:
    """What the routes need. ``public_url`` is the base HubSpot calls (signatures, OAuth)."""

    db: Database
    clock: Clock
    batcher: Batcher
    tokens: TokenStore
    client: HubSpotClient
    metrics: Metrics
    public_url: str
    client_id: str | None
    client_secret: str
    authorize_url: str
    longest_block: str = "P30D"  # THROTTLED_BLOCK_MAX, as configured (for the refusal log line)
    admin_token: str | None = None
    config_api: bool = False  # also serve the config API here (THROTTLED_PUBLIC_CONFIG_API)
    signature_versions: tuple[str, ...] = ("v3", "v2")
    max_body_bytes: int = MAX_BODY_BYTES
    read_timeout_s: float = READ_TIMEOUT_S  # also how long a handler waits for the whole body (then 408)
    oauth_callbacks_per_minute: int = CALLBACKS_PER_MINUTE
    state: ServiceState = field(default_factory=ServiceState)

    def __repr__(self) -> str:
        return f"WebDeps(public_url={self.public_url!r})"


def create_app(deps: WebDeps) -> QuartTrio:
    """Build the app around ``deps``."""
    app = QuartTrio("throttled")
    app.config["MAX_CONTENT_LENGTH"] = deps.max_body_bytes
    app.config["BODY_TIMEOUT"] = deps.read_timeout_s  # a trickled body: 408, then the connection closes
    register_error_handlers(app)
    app.register_blueprint(oauth_blueprint(
        db=deps.db, clock=deps.clock, tokens=deps.tokens, client=deps.client, public_url=deps.public_url,
        client_id=deps.client_id, client_secret=deps.client_secret, authorize_url=deps.authorize_url,
        callbacks_per_minute=deps.oauth_callbacks_per_minute))
    app.register_blueprint(customer_blueprint(deps))  # the customer page, /app (web/customer)
    app.register_blueprint(options_blueprint(db=deps.db, clock=deps.clock, client_secret=deps.client_secret,
                                             public_url=deps.public_url, accepted=deps.signature_versions))
    if deps.config_api:  # a separate switch: the admin token alone never opens the public port
        app.register_blueprint(config_blueprint(deps.db, deps.clock, deps.admin_token))
    unidentified = OncePer(600.0)  # a step nothing identifies: one line per workflow per 10 minutes
    rejected = RefusalLog("webhook.rejected")
    too_long = OncePer(600.0)  # records no block could cover: one line per queue per 10 minutes

    @app.post("/api/hubspot/action")
    async def action() -> ResponseReturnValue:
        outcome = "error"
        try:
            if deps.state.stopping:
                outcome = "stopping"
                return jsonify(error="stopping", message="shutting down, retry later"), 503, {"Retry-After": str(RETRY_AFTER_S)}
            outcome = "unauthorized"
            try:
                body = await signed_body(deps.client_secret, deps.public_url, deps.clock, deps.signature_versions)
            except SignatureError as exc:
                rejected(outcome, exc.reason)
                raise
            outcome = "invalid"
            try:
                enrollment = parse_enrollment(body)
            except InvalidInput as exc:
                rejected(outcome, exc.field)
                raise
            if enrollment.step_source == "settings" and unidentified.due(
                    (enrollment.portal_id, enrollment.workflow_id), trio.current_time()) is not None:
                log.warning("webhook.step_unidentified", portal_id=enrollment.portal_id,
                            workflow_id=enrollment.workflow_id, queue_id=str(enrollment.queue_id),
                            note="no context.actionId and no ap-<portal>-… callback id: steps are kept apart "
                                 "by their settings; steps with identical settings share one queue")
            outcome = "unavailable"
            answer = await deps.batcher.submit(enrollment)
            if answer.refused:  # no block up to THROTTLED_BLOCK_MAX covers it, or its named throttle is off
                outcome = "too_long"
                missed = too_long.due((str(enrollment.queue_id), answer.refused), trio.current_time())
                if missed is not None:
                    log.warning("webhook.not_held", reason=answer.refused, queue_id=str(enrollment.queue_id),
                                portal_id=enrollment.portal_id, longest_block=deps.longest_block, not_logged_since=missed,
                                note=_NOT_HELD_NOTES[answer.refused])
                return jsonify(outputs.not_held(answer.refused))
            if answer.state == ExecutionState.RELEASED:  # HubSpot sent it again after we completed it: it is done
                outcome = "already_completed"
                return jsonify(outputs.already_completed(answer.outputs))
            # A new record: the block chosen for it. One HubSpot sent again: the rest of its block.
            remaining = answer.block or (answer.expires_at - deps.clock.now() if answer.expires_at else None)
            if answer.state in (ExecutionState.FAILED, ExecutionState.EXPIRED) or remaining is None \
                    or remaining <= dt.timedelta(0):  # over without a release
                outcome = "already_ended"
                return jsonify(outputs.ended_unreleased(
                    answer.state if answer.state == ExecutionState.FAILED else ExecutionState.EXPIRED))
            outcome = "accepted"
            return jsonify(outputs.block(remaining))
        finally:
            deps.metrics.webhooks.labels(outcome).inc()

    @app.get("/healthz")
    async def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz")
    async def readyz() -> Response:
        await deps.db.transaction(lambda conn: conn.execute(sa.text("SELECT 1")).scalar_one())
        return jsonify(status="ready")

    return app


_NOT_HELD_NOTES = {
    QUEUE_TOO_LONG: "answered FAIL_CONTINUE (errorCode QUEUE_TOO_LONG): the queue's backlog at its rate waits longer "
                    "than the longest block; raise the step's rate or THROTTLED_BLOCK_MAX",
    RELEASE_AFTER_TOO_LATE: "answered FAIL_CONTINUE (errorCode RELEASE_AFTER_TOO_LATE): the record's release_after lies "
                            "past the longest block; the step's date input, not the queue, is the cause",
    THROTTLE_INACTIVE: "answered FAIL_CONTINUE (errorCode THROTTLE_INACTIVE): the step picks a named throttle the "
                       "customer deactivated on their page",
    THROTTLE_DELETED: "answered FAIL_CONTINUE (errorCode THROTTLE_DELETED): the step picks a named throttle the "
                      "customer deleted; the workflow needs another throttle picked",
    THROTTLE_UNKNOWN: "answered FAIL_CONTINUE (errorCode THROTTLE_UNKNOWN): the step names a throttle the portal never "
                      "created and gives no rate of its own",
}

