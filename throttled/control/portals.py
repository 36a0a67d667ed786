"""Portals as operators see them (never their tokens), and what an install changes."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.engine import Connection

from throttled.control import jsonable
from throttled.db import executions as executions_sql
from throttled.db import portals as portals_sql
from throttled.db import queues as queues_sql
from throttled.db.portals import PortalRow
from throttled.throttle.job import wake_throttle_job


@dataclass(frozen=True)
class PortalOverview:
    """A portal as operators see it — never its tokens. ``token_status``: ``valid``,
    ``expired`` (the access token is refreshed on next use) or ``missing``."""

    portal_id: int
    status: str
    token_status: str
    expires_at: dt.datetime | None
    scopes: list[str]
    key_id: str | None
    held_until: dt.datetime | None  # HubSpot refused the portal as a whole: no calls until then
    hold_reason: str | None
    installed_at: dt.datetime
    updated_at: dt.datetime

    def as_json(self) -> dict[str, Any]:
        """JSON-ready dict (times as ISO-8601 UTC)."""
        return jsonable(asdict(self))


def portal_installed(conn: Connection, portal_id: int, now: dt.datetime) -> int:
    """A portal was (re-)installed: releases that failed for it go back in line now and its
    queues' jobs wake, instead of waiting out their leases. Returns how many were requeued."""
    requeued = executions_sql.requeue_deferred(conn, portal_id, now)
    for queue in queues_sql.list_queues(conn, portal_id):
        wake_throttle_job(conn, queue.queue_id, now)
    return requeued


def list_portals(conn: Connection, now: dt.datetime) -> list[PortalOverview]:
    """Every installed portal with its status and token expiry, by id (no token bytes)."""
    return [_portal_overview(p, now) for p in portals_sql.list_portals(conn)]


def _portal_overview(p: PortalRow, now: dt.datetime) -> PortalOverview:
    held = p.held_at(now)
    return PortalOverview(p.portal_id, p.status, _token_status(p, now), p.expires_at, p.scopes, p.key_id,
                          p.held_until if held else None, p.hold_reason if held else None, p.installed_at, p.updated_at)


def _token_status(p: PortalRow, now: dt.datetime) -> str:
    if p.access_token is None or p.expires_at is None:
        return "missing"
    return "valid" if p.expires_at > now else "expired"


def lift_portal_hold(conn: Connection, portal_id: int, now: dt.datetime) -> bool:
    """An operator lifts the portal's hold (the cause is fixed, e.g. ``HUBSPOT_CALLBACKS_API``):
    its queues release again at once. Returns whether it was held."""
    held = portals_sql.availability(conn, portal_id)
    portals_sql.clear_hold(conn, portal_id)
    portal_installed(conn, portal_id, now)  # what failed for it goes back in line; its queues wake
    return held is not None and held[1] is not None and held[1] > now
