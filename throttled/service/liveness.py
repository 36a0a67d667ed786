"""This daemon's liveness in ``nodes``: a heartbeat every third of the TTL, and "stopped" on
the way out.

Another daemon takes a dead one's work back without waiting for its leases: running jobs are
rescued by every scheduler's rescue pass, leased releases are put back in line by their
queue's next worker run (those never sent at once, those on the wire counted in the window).
A kill -9 is noticed within one TTL of the last heartbeat; a graceful stop at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt

import structlog
import trio

from throttled.clock import Clock
from throttled.db import nodes as nodes_sql
from throttled.db.engine import Database, DatabaseUnavailable

log = structlog.get_logger("throttled.liveness")


async def keep_alive(db: Database, clock: Clock, owner: str, ttl_s: float, *,
                     task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Beat until cancelled, then mark ``owner`` stopped. ``ttl_s``: seconds a beat lasts.

    Raises:
        DatabaseUnavailable: the first beat failed (start-up).
    """
    ttl = dt.timedelta(seconds=ttl_s)
    now = clock.now()
    await db.transaction(nodes_sql.heartbeat, owner, now, now + ttl)
    task_status.started()
    try:
        while True:
            await trio.sleep(ttl_s / 3)
            now = clock.now()
            try:
                await db.transaction(nodes_sql.heartbeat, owner, now, now + ttl)
            except DatabaseUnavailable as exc:
                log.warning("liveness.beat_failed", error=str(exc))
    finally:
        # Shielded: marked stopped even while cancelled; if the database is down, our row lapses within one TTL.
        with trio.CancelScope(shield=True), contextlib.suppress(DatabaseUnavailable):
            await db.transaction(nodes_sql.stopped, owner, clock.now())
