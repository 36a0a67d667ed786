"""The operator config API: ``GET/PUT/DELETE /api/config/{portal_id}/{action_id}``.

Kept from the original app (an upsert on portal + action). Requests need
``Authorization: Bearer <THROTTLED_ADMIN_TOKEN>``; without that setting the routes answer
404, as if absent. Bodies and answers are JSON; an override beats the steps' inputs and
reaches every daemon at once (see ``throttled.control``). A PUT's answer also holds
``will_expire``: per queue, how many held records now expire before their turn.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from quart import Blueprint, Response, jsonify, request
from sqlalchemy.engine import Connection

from throttled import control
from throttled.clock import Clock
from throttled.control import NotFound
from throttled.db.engine import Database
from throttled.db.queues import ConfigRow
from throttled.ids import (
    MAX_ID,  # outside 1..MAX_ID there is no such portal or step: 404
)
from throttled.ingest.inputs import InvalidInput, Override, parse_override
from throttled.throttle.outlook import Expiring
from throttled.web.auth import bearer_guard


def config_blueprint(db: Database, clock: Clock, admin_token: str | None) -> Blueprint:
    """The config routes, bound to ``db`` and guarded by ``admin_token``."""
    api = Blueprint("config_api", __name__)

    api.before_request(bearer_guard(admin_token))

    @api.before_request
    async def ids_in_range() -> tuple[Response, int] | None:
        ids = (request.view_args or {}).values()
        if not all(isinstance(i, int) and 1 <= i <= MAX_ID for i in ids):
            return jsonify(error="not_found", message="portal and action ids run from 1 to 2^63-1"), 404
        return None

    @api.get("/api/config/<int:portal_id>/<int:action_id>")
    async def get_config(portal_id: int, action_id: int) -> Response:
        return jsonify(_config_json(await db.transaction(control.get_config, portal_id, action_id)))

    @api.put("/api/config/<int:portal_id>/<int:action_id>")
    async def put_config(portal_id: int, action_id: int) -> Response:
        try:  # not request.get_json: it lets a non-UTF-8 body or deep nesting through as a 500
            body = json.loads(await request.get_data(cache=False))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            body = None
        if not isinstance(body, dict):
            raise InvalidInput("body", "must be a JSON object")
        override = parse_override(body)
        config, found = await db.transaction(_set_and_check, portal_id, action_id, override, clock.now())
        # Held records keep their HubSpot blocks: say how many now expire before their turn.
        return jsonify(_config_json(config) | {"will_expire": {q: e.count for q, e in found.items()}})

    @api.delete("/api/config/<int:portal_id>/<int:action_id>")
    async def delete_config(portal_id: int, action_id: int) -> tuple[str, int]:
        await db.transaction(control.delete_config, portal_id, action_id, clock.now())
        return "", 204

    @api.errorhandler(NotFound)
    async def not_found(exc: NotFound) -> tuple[Response, int]:
        return jsonify(error="not_found", message=str(exc)), 404

    return api


def _set_and_check(conn: Connection, portal_id: int, action_id: int, override: Override,
                   now: dt.datetime) -> tuple[ConfigRow, dict[str, Expiring]]:
    return (control.set_config(conn, portal_id, action_id, override, now),
            control.expiring_for_action(conn, portal_id, action_id, now))


def _config_json(config: ConfigRow) -> dict[str, Any]:
    return {
        "portal_id": config.portal_id, "action_id": config.action_id,
        "max_throughput": config.max_throughput, "time_period": config.time_period,
        "time_unit": config.time_unit, "mode": config.mode, "updated_at": config.updated_at.isoformat(),
    }
