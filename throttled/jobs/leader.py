"""Leader election on a one-row lease per role (``leaders`` table).

The leader renews at half the TTL. A follower tries again when the current lease ends (or
after a quarter TTL, whichever is first), so a new leader takes over within one TTL of the
old one's last renewal, and within a quarter TTL when the old one resigned on shutdown.
Leadership is believed only while the lease this daemon last won has not run out by its
own clock: if the database becomes unreachable, a leader stops acting as one when its
lease would have lapsed.
"""

from __future__ import annotations

import contextlib
import datetime as dt

import structlog
import trio
from sqlalchemy.engine import Connection

from throttled.clock import Clock
from throttled.db import leaders as leaders_sql
from throttled.db.engine import Database, DatabaseUnavailable

log = structlog.get_logger("throttled.jobs.leader")


class Leadership:
    """Competes for ``role`` as ``owner``; :attr:`is_leader` says whether it holds it.

    Args:
        ttl_s: lease length, seconds.
    """

    def __init__(self, db: Database, clock: Clock, role: str, owner: str, ttl_s: float = 10.0) -> None:
        self.db = db
        self.clock = clock
        self.role = role
        self.owner = owner
        self.ttl = dt.timedelta(seconds=ttl_s)
        self._lease_until: dt.datetime | None = None
        self.gained = trio.Event()  # set each time leadership is won; replaced after

    @property
    def is_leader(self) -> bool:
        """True while the lease this daemon won is still running."""
        return self._lease_until is not None and self.clock.now() < self._lease_until

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Campaign until cancelled. Cancelling does not resign (a crash cannot either):
        call :meth:`resign` on a graceful shutdown."""
        task_status.started()
        while True:
            await self.clock.sleep_until(await self._campaign())

    async def resign(self) -> None:
        """Give the role up so another daemon takes it at once (graceful shutdown)."""
        if self._lease_until is None:
            return
        self._lease_until = None
        with contextlib.suppress(DatabaseUnavailable):  # the lease lapses on its own within one TTL
            await self.db.transaction(leaders_sql.resign, self.role, self.owner)

    async def _campaign(self) -> dt.datetime:
        """One attempt; returns when to try next."""
        now = self.clock.now()
        try:
            won, holder_until = await self.db.transaction(self._try, now)
        except DatabaseUnavailable as exc:
            log.warning("leader.db_unavailable", role=self.role, error=str(exc))
            return now + self.ttl / 4
        was_leader = self.is_leader
        if won:
            self._lease_until = now + self.ttl
            if not was_leader:
                log.info("leader.elected", role=self.role, owner=self.owner)
                self.gained.set()
                self.gained = trio.Event()
            return now + self.ttl / 2
        if was_leader:
            log.warning("leader.lost", role=self.role, owner=self.owner)
        self._lease_until = None
        # Retry when the holder's lease ends, or sooner in case it resigns (shutdown).
        return min(holder_until, now + self.ttl / 4) if holder_until else now + self.ttl / 4

    def _try(self, conn: Connection, now: dt.datetime) -> tuple[bool, dt.datetime | None]:
        if leaders_sql.acquire_or_renew(conn, self.role, self.owner, now, now + self.ttl):
            return True, None
        holder = leaders_sql.current(conn, self.role)
        return False, holder[1] if holder else None
