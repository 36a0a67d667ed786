"""Every SQL statement of ``named_throttles``: the throttles a customer names and manages.

A named throttle is the settings of one shared queue (``queue:{portal}:shared:{slug}``),
owned by the customer's page rather than by the last step that enrolled. Every statement is
keyed by portal first: a portal never reads or changes another's named throttles. Settings
travel as their stored columns (``throttle/policy.py`` converts: ``step_of``,
``stored_columns``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from throttled.states import NamedThrottleState

_COLUMNS = """portal_id, slug, display_name, max_throughput, time_period, time_unit, mode, release_days,
    release_start_minute, release_end_minute, time_zone, state, created_at, updated_at"""
_SETTINGS = ("max_throughput", "time_period", "time_unit", "mode", "release_days", "release_start_minute",
             "release_end_minute", "time_zone")


@dataclass(frozen=True, slots=True)
class NamedThrottle:
    """A named throttle as stored: ``slug`` is what a step's ``shared_queue`` input carries;
    the settings columns win over the step's own inputs; times are aware UTC."""

    portal_id: int
    slug: str
    display_name: str
    max_throughput: int
    time_period: int
    time_unit: str
    mode: str
    release_days: int | None
    release_start_minute: int | None
    release_end_minute: int | None
    time_zone: str | None
    state: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def active(self) -> bool:
        return self.state == NamedThrottleState.ACTIVE


def list_named(conn: Connection, portal_id: int, *, states: Collection[str] = ("active", "inactive")) -> list[NamedThrottle]:
    """The portal's named throttles in ``states``, by display name."""
    rows = conn.execute(
        text(f"""SELECT {_COLUMNS} FROM named_throttles WHERE portal_id = :portal_id AND state = ANY(:states)
                 ORDER BY lower(display_name), slug"""),
        {"portal_id": portal_id, "states": list(states)},
    ).all()
    return [NamedThrottle(*r) for r in rows]


def get_named(conn: Connection, portal_id: int, slug: str) -> NamedThrottle | None:
    """One named throttle of the portal, whatever its state (``None``: never named)."""
    row = conn.execute(text(f"SELECT {_COLUMNS} FROM named_throttles WHERE portal_id = :portal_id AND slug = :slug"),
                       {"portal_id": portal_id, "slug": slug}).first()
    return NamedThrottle(*row) if row is not None else None


def lookup(conn: Connection, keys: Collection[tuple[int, str]]) -> dict[tuple[int, str], NamedThrottle]:
    """The named throttles of ``keys`` (``(portal_id, slug)``), any state, in one statement."""
    if not keys:
        return {}
    portals, slugs = zip(*sorted(keys), strict=True)
    rows = conn.execute(
        text(f"""SELECT {_COLUMNS} FROM named_throttles
                 WHERE (portal_id, slug) IN (SELECT * FROM unnest(CAST(:portals AS bigint[]), CAST(:slugs AS text[])))"""),
        {"portals": list(portals), "slugs": list(slugs)},
    ).all()
    return {(n.portal_id, n.slug): n for n in (NamedThrottle(*r) for r in rows)}


def save_named(conn: Connection, portal_id: int, slug: str, display_name: str, settings: Mapping[str, Any],
               now: dt.datetime, *, create: bool) -> bool:
    """Create (``create``) or update a named throttle; ``settings`` maps each settings column
    (``max_throughput`` … ``time_zone``) to its value. An update keeps the state; a create
    makes it active (re-using the slug of a deleted one). Returns False when a create finds
    the slug taken by a live one, or an update finds no live one."""
    values = {"portal_id": portal_id, "slug": slug, "display_name": display_name, "now": now,
              **{c: settings[c] for c in _SETTINGS}}
    assignments = ", ".join(f"{c} = :{c}" for c in ("display_name", *_SETTINGS)) + ", updated_at = :now"
    if create:
        sql = f"""INSERT INTO named_throttles AS n ({_COLUMNS})
                  VALUES (:portal_id, :slug, :display_name, {", ".join(":" + c for c in _SETTINGS)}, 'active', :now, :now)
                  ON CONFLICT (portal_id, slug) DO UPDATE SET {assignments}, state = 'active', created_at = :now
                  WHERE n.state = 'deleted'
                  RETURNING slug"""
    else:
        sql = f"""UPDATE named_throttles SET {assignments}
                  WHERE portal_id = :portal_id AND slug = :slug AND state <> 'deleted' RETURNING slug"""
    return conn.execute(text(sql), values).first() is not None


def set_named_state(conn: Connection, portal_id: int, slug: str, state: NamedThrottleState, now: dt.datetime) -> bool:
    """Activate, deactivate or delete a live named throttle. Returns False when the portal
    has no live one of that slug (a deleted one stays deleted: create it again)."""
    return conn.execute(
        text("""UPDATE named_throttles SET state = :state, updated_at = :now
                WHERE portal_id = :portal_id AND slug = :slug AND state <> 'deleted' RETURNING slug"""),
        {"portal_id": portal_id, "slug": slug, "state": str(state), "now": now},
    ).first() is not None
