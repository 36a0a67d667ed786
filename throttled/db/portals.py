"""Every SQL statement of the ``portals`` table. Tokens arrive and leave encrypted."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection


@dataclass(frozen=True, slots=True)
class PortalRow:
    """A portal as stored; token fields are ciphertexts (see ``throttled.crypto``)."""

    portal_id: int
    status: str
    access_token: bytes | None
    refresh_token: bytes | None
    expires_at: dt.datetime | None
    scopes: list[str]
    key_id: str | None
    rate_limited_until: dt.datetime | None
    installed_at: dt.datetime
    updated_at: dt.datetime

    def __repr__(self) -> str:  # never show token bytes
        return f"PortalRow(portal_id={self.portal_id}, status={self.status!r}, expires_at={self.expires_at})"


_COLUMNS = ("portal_id, status, access_token, refresh_token, expires_at, scopes, key_id, rate_limited_until, "
            "installed_at, updated_at")


def save_install(
    conn: Connection,
    portal_id: int,
    access_token: bytes,
    refresh_token: bytes,
    expires_at: dt.datetime,
    scopes: list[str],
    key_id: str,
    now: dt.datetime,
) -> None:
    """Store a (re-)installation's tokens; the portal becomes active again."""
    conn.execute(
        text(
            f"""INSERT INTO portals ({_COLUMNS})
                VALUES (:portal_id, 'active', :access, :refresh, :expires_at, :scopes, :key_id, NULL, :now, :now)
                ON CONFLICT (portal_id) DO UPDATE
                SET status = 'active', access_token = excluded.access_token, rate_limited_until = NULL,
                    refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
                    scopes = excluded.scopes, key_id = excluded.key_id, updated_at = excluded.updated_at"""
        ),
        {"portal_id": portal_id, "access": access_token, "refresh": refresh_token,
         "expires_at": expires_at, "scopes": scopes, "key_id": key_id, "now": now},
    )


def save_refreshed(
    conn: Connection,
    portal_id: int,
    access_token: bytes,
    refresh_token: bytes,
    expires_at: dt.datetime,
    key_id: str,
    now: dt.datetime,
) -> None:
    """Store tokens from a refresh (always the refresh token the response returned)."""
    conn.execute(
        text(
            """UPDATE portals SET access_token = :access, refresh_token = :refresh,
                                  expires_at = :expires_at, key_id = :key_id, updated_at = :now
               WHERE portal_id = :portal_id"""
        ),
        {"portal_id": portal_id, "access": access_token, "refresh": refresh_token,
         "expires_at": expires_at, "key_id": key_id, "now": now},
    )


def get_portal(conn: Connection, portal_id: int, *, lock: bool = False) -> PortalRow | None:
    """One portal, row-locked for this transaction when ``lock``."""
    row = conn.execute(
        text(f"SELECT {_COLUMNS} FROM portals WHERE portal_id = :portal_id" + (" FOR UPDATE" if lock else "")),
        {"portal_id": portal_id},
    ).first()
    return _portal(row) if row else None


def set_status(conn: Connection, portal_id: int, status: str, now: dt.datetime) -> None:
    """Set a portal's status (active, suspended, revoked)."""
    conn.execute(
        text("UPDATE portals SET status = :status, updated_at = :now WHERE portal_id = :portal_id"),
        {"portal_id": portal_id, "status": status, "now": now},
    )


def set_rate_limited_until(conn: Connection, portal_id: int, until: dt.datetime) -> None:
    """HubSpot's daily limit: make no calls for this portal before ``until``."""
    conn.execute(
        text("UPDATE portals SET rate_limited_until = :until WHERE portal_id = :portal_id"),
        {"portal_id": portal_id, "until": until},
    )


def availability(conn: Connection, portal_id: int) -> tuple[str, dt.datetime | None] | None:
    """``(status, rate_limited_until)`` of a portal, or ``None`` if it never installed."""
    row = conn.execute(
        text("SELECT status, rate_limited_until FROM portals WHERE portal_id = :portal_id"), {"portal_id": portal_id}
    ).first()
    return (row.status, row.rate_limited_until) if row else None


def list_portals(conn: Connection) -> list[PortalRow]:
    """Every portal, by id."""
    return [_portal(r) for r in conn.execute(text(f"SELECT {_COLUMNS} FROM portals ORDER BY portal_id"))]


def _portal(row) -> PortalRow:
    return PortalRow(
        row.portal_id, row.status,
        bytes(row.access_token) if row.access_token is not None else None,
        bytes(row.refresh_token) if row.refresh_token is not None else None,
        row.expires_at, list(row.scopes or []), row.key_id, row.rate_limited_until, row.installed_at, row.updated_at,
    )


def lock_portals_to_rotate(conn: Connection, current_key_id: str, limit: int) -> list[PortalRow]:
    """Up to ``limit`` portals whose tokens are under another key than ``current_key_id``,
    row-locked; rows a daemon holds right now (a refresh in progress) are skipped and
    picked up by a later batch."""
    rows = conn.execute(
        text(
            f"""SELECT {_COLUMNS} FROM portals
                WHERE key_id IS DISTINCT FROM :current AND access_token IS NOT NULL
                ORDER BY portal_id LIMIT :limit FOR UPDATE SKIP LOCKED"""
        ),
        {"current": current_key_id, "limit": limit},
    ).all()
    return [_portal(r) for r in rows]


def count_to_rotate(conn: Connection, current_key_id: str) -> int:
    """Portals whose tokens are not yet under ``current_key_id``."""
    return conn.execute(
        text("SELECT count(*) FROM portals WHERE key_id IS DISTINCT FROM :current AND access_token IS NOT NULL"),
        {"current": current_key_id},
    ).scalar_one()


def save_reencrypted(conn: Connection, portal_id: int, access_token: bytes, refresh_token: bytes, key_id: str) -> None:
    """Store a portal's tokens re-encrypted under ``key_id`` (values unchanged)."""
    conn.execute(
        text("""UPDATE portals SET access_token = :access, refresh_token = :refresh, key_id = :key_id
                WHERE portal_id = :portal_id"""),
        {"portal_id": portal_id, "access": access_token, "refresh": refresh_token, "key_id": key_id},
    )
