"""Every SQL statement of the ``leaders`` table: leadership leases, one row per role."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.engine import Connection


def acquire_or_renew(conn: Connection, role: str, owner: str, now: dt.datetime, expires_at: dt.datetime) -> bool:
    """Take ``role`` if it is free or lapsed, or renew it if ``owner`` holds it.

    Returns whether ``owner`` leads until ``expires_at``. One statement: two contenders
    serialize on the row and exactly one wins a lapsed lease.
    """
    row = conn.execute(
        text(
            """INSERT INTO leaders (name, owner, expires_at) VALUES (:role, :owner, :expires_at)
               ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
               WHERE leaders.owner = excluded.owner OR leaders.expires_at <= :now
               RETURNING owner"""
        ),
        {"role": role, "owner": owner, "now": now, "expires_at": expires_at},
    ).first()
    return row is not None


def current(conn: Connection, role: str) -> tuple[str, dt.datetime] | None:
    """``(owner, expires_at)`` of the role's lease, or ``None``."""
    row = conn.execute(text("SELECT owner, expires_at FROM leaders WHERE name = :role"), {"role": role}).first()
    return (row.owner, row.expires_at) if row else None


def resign(conn: Connection, role: str, owner: str) -> bool:
    """Give the role up (on shutdown) so another daemon takes it at once."""
    return conn.execute(
        text("DELETE FROM leaders WHERE name = :role AND owner = :owner"), {"role": role, "owner": owner}
    ).rowcount == 1
