"""The admin listener (``THROTTLED_ADMIN_BIND``, loopback by default): ``/metrics`` for
Prometheus, plus the operator API and status page mounted by ``admin_routes``.

Kept off the public listener HubSpot calls: metrics and operator actions need not face the
internet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from quart import Response
from quart_trio import QuartTrio

from throttled.clock import Clock
from throttled.db.engine import Database
from throttled.service.metrics import CONTENT_TYPE, Metrics
from throttled.web.errors import register_error_handlers


@dataclass(frozen=True)
class AdminDeps:
    """What the admin listener needs. ``admin_token`` unset = operator API answers 404."""

    db: Database
    clock: Clock
    metrics: Metrics
    portal_tasks: Callable[[], int]
    admin_token: str | None = None

    def __repr__(self) -> str:
        return "AdminDeps()"


def create_admin_app(deps: AdminDeps) -> QuartTrio:
    """Build the admin app around ``deps``."""
    app = QuartTrio("throttled-admin")
    register_error_handlers(app)

    @app.get("/metrics")
    async def metrics() -> Response:
        body = await deps.metrics.render(deps.db, deps.portal_tasks())
        return Response(body, content_type=CONTENT_TYPE)

    try:  # the operator API and status page, when present
        from throttled.web.admin_routes import register_admin_routes
    except ImportError:
        pass
    else:
        register_admin_routes(app, deps)
    return app
