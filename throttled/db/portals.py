"""Every SQL statement of the ``portals`` table. Tokens arrive and leave encrypted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Row


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
    installed_at: dt.datetime
    updated_at: dt.datetime
    held_until: dt.datetime | None = None
    hold_reason: str | None = None
    holds: int = 0
    refresh_claimed_by: str | None = None
    refresh_claimed_until: dt.datetime | None = None

    def held_at(self, now: dt.datetime) -> bool:
        """Whether HubSpot's refusal of the whole portal still holds it at ``now``."""
        return self.held_until is not None and self.held_until > now

    def __repr__(self) -> str:  # never show token bytes
        return f"PortalRow(portal_id={self.portal_id}, status={self.status!r}, expires_at={self.expires_at})"


_COLUMNS = ("portal_id, status, access_token, refresh_token, expires_at, scopes, key_id, installed_at, updated_at, "
            "held_until, hold_reason, holds, refresh_claimed_by, refresh_claimed_until")


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
    """Store a (re-)installation's tokens; the portal becomes active again and any hold
    (missing scopes, a refused client, the DAILY limit) is lifted."""
    conn.execute(
        text(
            """INSERT INTO portals (portal_id, status, access_token, refresh_token, expires_at, scopes, key_id,
                                   installed_at, updated_at)
                VALUES (:portal_id, 'active', :access, :refresh, :expires_at, :scopes, :key_id, :now, :now)
                ON CONFLICT (portal_id) DO UPDATE
                SET status = 'active', access_token = excluded.access_token,
                    refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
                    scopes = excluded.scopes, key_id = excluded.key_id, updated_at = excluded.updated_at,
                    held_until = NULL, hold_reason = NULL, holds = 0, rate_limited_until = NULL,
                    refresh_claimed_by = NULL, refresh_claimed_until = NULL"""
        ),
        {"portal_id": portal_id, "access": access_token, "refresh": refresh_token,
         "expires_at": expires_at, "scopes": scopes, "key_id": key_id, "now": now},
    )


def claim_refresh(conn: Connection, portal_id: int, owner: str, until: dt.datetime) -> None:
    """Claim the portal's token refresh for ``owner`` until ``until`` (the row must be locked
    by this transaction and the claim free or lapsed: see :class:`PortalRow`)."""
    conn.execute(
        text("""UPDATE portals SET refresh_claimed_by = :owner, refresh_claimed_until = :until
                WHERE portal_id = :portal_id"""),
        {"portal_id": portal_id, "owner": owner, "until": until},
    )


def save_refreshed(
    conn: Connection,
    portal_id: int,
    owner: str,
    access_token: bytes,
    refresh_token: bytes,
    expires_at: dt.datetime,
    key_id: str,
    now: dt.datetime,
) -> bool:
    """Store tokens from a refresh (always the refresh token the response returned) and end
    ``owner``'s claim — only if ``owner`` still holds it (compare-and-set: a claim that
    lapsed while HubSpot answered may have passed to another daemon, whose tokens win).
    Returns whether they were stored."""
    return conn.execute(
        text(
            """UPDATE portals SET access_token = :access, refresh_token = :refresh,
                                  expires_at = :expires_at, key_id = :key_id, updated_at = :now,
                                  refresh_claimed_by = NULL, refresh_claimed_until = NULL
               WHERE portal_id = :portal_id AND refresh_claimed_by = :owner AND status = 'active'"""
        ),
        {"portal_id": portal_id, "owner": owner, "access": access_token, "refresh": refresh_token,
         "expires_at": expires_at, "key_id": key_id, "now": now},
    ).rowcount == 1


def end_refresh_claim(conn: Connection, portal_id: int, owner: str) -> None:
    """``owner`` gives its refresh claim up (the refresh failed; another may try)."""
    conn.execute(
        text("""UPDATE portals SET refresh_claimed_by = NULL, refresh_claimed_until = NULL
                WHERE portal_id = :portal_id AND refresh_claimed_by = :owner"""),
        {"portal_id": portal_id, "owner": owner},
    )


def revoke(conn: Connection, portal_id: int, owner: str, now: dt.datetime) -> bool:
    """HubSpot refused ``owner``'s refresh token for good: the portal is revoked — only if
    ``owner`` still holds the refresh claim (else its token may be one another daemon just
    rotated away). Returns whether it was revoked."""
    return conn.execute(
        text("""UPDATE portals SET status = 'revoked', updated_at = :now,
                                   refresh_claimed_by = NULL, refresh_claimed_until = NULL
                WHERE portal_id = :portal_id AND refresh_claimed_by = :owner"""),
        {"portal_id": portal_id, "owner": owner, "now": now},
    ).rowcount == 1


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


def hold(
    conn: Connection, portal_id: int, reason: str, now: dt.datetime, *,
    until: dt.datetime | None = None, first_s: float = 60.0, max_s: float = 3600.0,
) -> dt.datetime:
    """HubSpot refused the portal as a whole: no calls before the returned time.

    ``until`` given (the DAILY limit): held until then. Else held ``first_s · 2^holds``
    seconds (at most ``max_s``) and ``holds`` counts this refusal; a success resets it
    (:func:`clear_hold`). An existing later hold is kept.
    """
    held_until: dt.datetime = conn.execute(
        text(
            """UPDATE portals SET
                 held_until = greatest(held_until, coalesce(CAST(:until AS timestamptz),
                     CAST(:now AS timestamptz) + make_interval(secs => least(:max_s, :first_s * power(2, holds))))),
                 hold_reason = :reason,
                 holds = CASE WHEN CAST(:until AS timestamptz) IS NULL THEN holds + 1 ELSE holds END,
                 updated_at = :now
               WHERE portal_id = :portal_id
               RETURNING held_until"""
        ),
        {"portal_id": portal_id, "reason": reason[:500], "now": now, "until": until, "first_s": first_s, "max_s": max_s},
    ).scalar_one()
    return held_until


def clear_hold(conn: Connection, portal_id: int) -> None:
    """HubSpot accepted a call of the portal: any hold and its backoff end (writes nothing
    when there is none)."""
    clear_holds(conn, [portal_id])


def clear_holds(conn: Connection, portal_ids: Sequence[int]) -> None:
    """:func:`clear_hold` for several portals in one statement (locked in id order, so two
    daemons clearing overlapping sets cannot deadlock; nothing is locked when none is held)."""
    conn.execute(
        text("""WITH held AS (SELECT portal_id FROM portals
                              WHERE portal_id = ANY(:ids) AND (holds > 0 OR held_until IS NOT NULL)
                              ORDER BY portal_id FOR UPDATE)
                UPDATE portals SET held_until = NULL, hold_reason = NULL, holds = 0
                FROM held WHERE portals.portal_id = held.portal_id"""),
        {"ids": list(portal_ids)},
    )


def availability(conn: Connection, portal_id: int) -> tuple[str, dt.datetime | None] | None:
    """``(status, held_until)`` of a portal, or ``None`` if it never installed."""
    row = conn.execute(
        text("SELECT status, held_until FROM portals WHERE portal_id = :portal_id"), {"portal_id": portal_id}
    ).first()
    return (row.status, row.held_until) if row else None


def blocks(conn: Connection, portal_ids: list[int], now: dt.datetime) -> dict[int, tuple[dt.datetime | None, str]]:
    """Why each of ``portal_ids`` that cannot be called now cannot: ``{portal_id: (until,
    reason)}`` — held by HubSpot's refusal (until ``held_until``), revoked or never installed
    (``until`` ``None``: until the app is installed). Usable portals are absent."""
    rows = {r.portal_id: r for r in conn.execute(
        text("SELECT portal_id, status, held_until, hold_reason FROM portals WHERE portal_id = ANY(:ids)"),
        {"ids": portal_ids},
    )}
    found: dict[int, tuple[dt.datetime | None, str]] = {}
    for portal_id in portal_ids:
        row = rows.get(portal_id)
        if row is None:
            found[portal_id] = (None, "the app is not installed on this portal: the customer must install it")
        elif row.status != "active":
            found[portal_id] = (None, f"the portal is {row.status}: the customer must install the app again")
        elif row.held_until is not None and row.held_until > now:
            found[portal_id] = (row.held_until, row.hold_reason or "")
    return found


def list_portals(conn: Connection) -> list[PortalRow]:
    """Every portal, by id."""
    return [_portal(r) for r in conn.execute(text(f"SELECT {_COLUMNS} FROM portals ORDER BY portal_id"))]


def _portal(row: Row[Any]) -> PortalRow:
    return PortalRow(
        row.portal_id, row.status,
        bytes(row.access_token) if row.access_token is not None else None,
        bytes(row.refresh_token) if row.refresh_token is not None else None,
        row.expires_at, list(row.scopes or []), row.key_id, row.installed_at, row.updated_at,
        row.held_until, row.hold_reason, row.holds, row.refresh_claimed_by, row.refresh_claimed_until,
    )


_TO_ROTATE = ("(key_id IS DISTINCT FROM :current OR get_byte(access_token, 0) <> :format "
              "OR get_byte(refresh_token, 0) <> :format) AND access_token IS NOT NULL")


def lock_portals_to_rotate(conn: Connection, current_key_id: str, current_format: int, limit: int) -> list[PortalRow]:
    """Up to ``limit`` portals whose tokens are under another key than ``current_key_id``
    or in an older stored form than ``current_format`` (the first byte), row-locked; rows a
    daemon holds right now (a refresh in progress) are skipped and picked up by a later batch."""
    rows = conn.execute(
        text(f"SELECT {_COLUMNS} FROM portals WHERE {_TO_ROTATE} ORDER BY portal_id LIMIT :limit FOR UPDATE SKIP LOCKED"),
        {"current": current_key_id, "format": current_format, "limit": limit},
    ).all()
    return [_portal(r) for r in rows]


def count_to_rotate(conn: Connection, current_key_id: str, current_format: int) -> int:
    """Portals whose tokens are not yet under ``current_key_id`` in ``current_format``."""
    count: int = conn.execute(
        text(f"SELECT count(*) FROM portals WHERE {_TO_ROTATE}"),
        {"current": current_key_id, "format": current_format},
    ).scalar_one()
    return count


def save_reencrypted(conn: Connection, portal_id: int, access_token: bytes, refresh_token: bytes, key_id: str) -> None:
    """Store a portal's tokens re-encrypted under ``key_id`` (values unchanged)."""
    conn.execute(
        text("""UPDATE portals SET access_token = :access, refresh_token = :refresh, key_id = :key_id
                WHERE portal_id = :portal_id"""),
        {"portal_id": portal_id, "access": access_token, "refresh": refresh_token, "key_id": key_id},
    )
