"""The admin listener (``THROTTLED_ADMIN_BIND``, loopback by default): ``/metrics`` for
Prometheus, the operator API and the status page. Kept off the public listener HubSpot
calls: metrics and operator actions need not face the internet.

API: JSON in and out, every request needs ``Authorization: Bearer <THROTTLED_ADMIN_TOKEN>``
(401 when missing or wrong; 404 for every route when no token is configured, as if absent).
Actions go through ``throttled.control`` — the same functions as the ``throttled queues`` and
``throttled jobs`` commands — so they reach running daemons through the database.

====================================  ==================================================
route                                 answer
====================================  ==================================================
GET  /api/admin/queues                {"queues": [queue]}  (QueueOverview.as_json)
GET  /api/admin/queues/<id>           queue, or 404
POST /api/admin/queues/<id>/pause     queue (also resume, drain)
POST /api/admin/queues/<id>/purge     {"cancelled": n, "queue": queue}
GET  /api/admin/jobs?state&kind&limit {"jobs": [job]}, newest first; limit 1..500 (100)
POST /api/admin/jobs/<id>/retry       job; 404 unknown, 409 when not retryable
POST /api/admin/jobs/<id>/cancel      job; 404 unknown, 409 when already final
GET  /api/admin/portals               {"portals": [portal]} — status, token expiry, never tokens
GET/PUT/DELETE /api/config/<p>/<a>    the config API (``web/config_api.py``), same token
GET  /admin                           HTML status page, read-only
GET  /metrics                         Prometheus text format
====================================  ==================================================

``/admin`` and ``/metrics`` need no token unless ``THROTTLED_PAGES_TOKEN`` is set (then it, or
the admin token: Bearer, or the password of HTTP Basic). Every route answers ``421`` to a
``Host`` outside ``THROTTLED_ADMIN_HOSTS`` (DNS rebinding; ``web/auth.py``).

Bad parameters answer 400 ``{"error": "invalid_input", "field", "message"}``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from quart import Blueprint, Response, jsonify, request
from quart_trio import QuartTrio
from sqlalchemy.engine import Connection

from throttled import control
from throttled.clock import Clock
from throttled.control import Conflict, NotFound, QueueOverview
from throttled.db.engine import Database
from throttled.ids import MAX_ID
from throttled.ingest.inputs import InvalidInput
from throttled.service.metrics import CONTENT_TYPE, Metrics
from throttled.web.auth import bearer_guard, host_guard, pages_guard
from throttled.web.config_api import config_blueprint
from throttled.web.errors import register_error_handlers
from throttled.web.reuse import Reused
from throttled.web.status_page import render_status_page, status_snapshot


@dataclass(frozen=True)
class AdminDeps:
    """What the admin listener needs. ``admin_token`` unset = operator API answers 404."""

    db: Database
    clock: Clock
    metrics: Metrics
    portal_tasks: Callable[[], int]
    admin_token: str | None = None
    pages_token: str | None = None  # THROTTLED_PAGES_TOKEN: unset = the pages are open
    allowed_hosts: tuple[str, ...] | None = ("localhost", "127.0.0.1", "::1")  # None = any Host

    def __repr__(self) -> str:
        return "AdminDeps()"


def create_admin_app(deps: AdminDeps) -> QuartTrio:
    """Build the admin app around ``deps``: metrics, the operator API, the status page."""
    app = QuartTrio("throttled-admin")
    register_error_handlers(app)
    app.before_request(host_guard(deps.allowed_hosts))
    app.register_blueprint(_api_blueprint(deps))
    app.register_blueprint(config_blueprint(deps.db, deps.clock, deps.admin_token))
    app.register_blueprint(_pages_blueprint(deps))
    return app


#: Seconds a built status page and metrics scrape are served to everyone who asks (the page
#: reloads itself every 30 s; Prometheus scrapes every 15 s or so).
PAGE_AGE_S, METRICS_AGE_S = 2.0, 1.0

#: The page allows nothing but its own inline CSS and SVG.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
    "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
}


def _pages_blueprint(deps: AdminDeps) -> Blueprint:
    """The status page and the metrics: read-only, no secrets; open unless a pages token is
    set (the listener binds to loopback by default, THROTTLED_ADMIN_BIND=127.0.0.1:8081)."""
    pages = Blueprint("admin_pages", __name__)
    pages.before_request(pages_guard(deps.pages_token, deps.admin_token))

    async def build_page() -> str:
        snapshot = await deps.db.transaction(status_snapshot, deps.clock.now())
        return render_status_page(snapshot)

    page = Reused(build_page, PAGE_AGE_S)
    scrape = Reused(lambda: deps.metrics.render(deps.db, deps.portal_tasks()), METRICS_AGE_S)

    @pages.get("/admin")
    async def status_page() -> Response:
        return Response(await page.get(), content_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    @pages.get("/metrics")
    async def metrics() -> Response:
        return Response(await scrape.get(), content_type=CONTENT_TYPE)

    return pages


def _api_blueprint(deps: AdminDeps) -> Blueprint:
    api = Blueprint("admin_api", __name__, url_prefix="/api/admin")
    db, clock, token = deps.db, deps.clock, deps.admin_token

    api.before_request(bearer_guard(token))

    @api.get("/queues")
    async def list_queues() -> Response:
        overviews = await db.transaction(control.list_queues)
        return jsonify(queues=[o.as_json() for o in overviews])

    # Queue ids hold ':' (``queue:62515:101:7:0``); ``path`` takes the whole id, whatever it holds.
    @api.get("/queues/<path:queue_id>")
    async def show_queue(queue_id: str) -> Response:
        return jsonify((await db.transaction(control.show_queue, queue_id)).as_json())

    actions = {"pause": control.pause_queue, "resume": control.resume_queue, "drain": control.drain_queue}

    @api.post("/queues/<path:queue_id>/<any(pause, resume, drain):action>")
    async def queue_action(queue_id: str, action: str) -> Response:
        overview = await db.transaction(actions[action], queue_id, clock.now())
        return jsonify(overview.as_json())

    @api.post("/queues/<path:queue_id>/purge")
    async def purge_queue(queue_id: str) -> Response:
        cancelled, overview = await db.transaction(_purge_and_show, queue_id, clock.now())
        return jsonify(cancelled=cancelled, queue=overview.as_json())

    @api.get("/jobs")
    async def list_jobs() -> Response:
        args = request.args
        limit = _int_arg("limit", args.get("limit", "100"))
        jobs = await db.transaction(control.list_jobs, args.get("state") or None, args.get("kind") or None, limit)
        return jsonify(jobs=[control.job_json(j) for j in jobs])

    @api.post(f"/jobs/<int(max={MAX_ID}):job_id>/retry")
    async def retry_job(job_id: int) -> Response:
        return jsonify(control.job_json(await db.transaction(control.retry_job, job_id, clock.now())))

    @api.post(f"/jobs/<int(max={MAX_ID}):job_id>/cancel")
    async def cancel_job(job_id: int) -> Response:
        return jsonify(control.job_json(await db.transaction(control.cancel_job, job_id, clock.now())))

    @api.get("/portals")
    async def list_portals() -> Response:
        portals = await db.transaction(control.list_portals, clock.now())
        return jsonify(portals=[p.as_json() for p in portals])

    @api.errorhandler(NotFound)
    async def not_found(exc: NotFound) -> tuple[Response, int]:
        return jsonify(error="not_found", message=str(exc)), 404

    @api.errorhandler(Conflict)
    async def conflict(exc: Conflict) -> tuple[Response, int]:
        return jsonify(error="conflict", message=str(exc)), 409

    return api


def _purge_and_show(conn: Connection, queue_id: str, now: dt.datetime) -> tuple[int, QueueOverview]:
    cancelled = control.purge_queue(conn, queue_id, now)
    return cancelled, control.show_queue(conn, queue_id)


def _int_arg(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(name, "must be a whole number") from None
