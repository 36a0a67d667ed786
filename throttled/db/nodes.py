"""Every SQL statement of ``nodes``: the daemons and their liveness.

A daemon (``owner``: ``host:pid:random``) renews ``alive_until`` every third of its TTL and
sets it to now when it stops gracefully. A row whose ``alive_until`` has passed is a dead
daemon: :data:`DEAD_OWNER` is the SQL test the job table and the executions use to take
its work back without waiting for leases. An owner with no row is never judged dead here.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.engine import Connection

#: SQL: the owner in column ``{column}`` is known and dead at ``:now`` (format the column in).
DEAD_OWNER = "EXISTS (SELECT 1 FROM nodes n WHERE n.owner = {column} AND n.alive_until < :now)"


def heartbeat(conn: Connection, owner: str, now: dt.datetime, alive_until: dt.datetime) -> None:
    """``owner`` is alive until ``alive_until`` (registered at its first beat)."""
    conn.execute(
        text("""INSERT INTO nodes (owner, alive_until, started_at) VALUES (:owner, :until, :now)
                ON CONFLICT (owner) DO UPDATE SET alive_until = excluded.alive_until"""),
        {"owner": owner, "until": alive_until, "now": now},
    )


def stopped(conn: Connection, owner: str, now: dt.datetime) -> None:
    """``owner`` stopped: dead from ``now`` (its work, if any is left, is taken back at once)."""
    conn.execute(text("UPDATE nodes SET alive_until = :now WHERE owner = :owner"), {"owner": owner, "now": now})


def prune(conn: Connection, before: dt.datetime, limit: int = 1000) -> int:
    """Forget daemons dead since before ``before`` (the cleaner)."""
    return conn.execute(
        text("""DELETE FROM nodes WHERE owner IN (SELECT owner FROM nodes WHERE alive_until < :before LIMIT :limit)"""),
        {"before": before, "limit": limit},
    ).rowcount


def alive(conn: Connection, now: dt.datetime) -> list[str]:
    """Owners alive at ``now``."""
    return list(conn.execute(text("SELECT owner FROM nodes WHERE alive_until >= :now ORDER BY owner"),
                             {"now": now}).scalars())
