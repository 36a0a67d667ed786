"""Operator overrides, cached per daemon: NOTIFY invalidates at once, a TTL bounds staleness.

An override change is written together with a NOTIFY on :data:`CONFIG_CHANNEL` (payload
``"{portal_id}:{action_id}"``) and wakes the affected queues' jobs, so every daemon applies
it at its next run — well within a second. Should a notification be late or lost, the worker
still sees the change: it checks the cached value's ``updated_at`` against the database under
the queue lock (``queues.lock_queue``) and reads a stale one again; the TTL (default 60 s)
bounds how long a stale entry lives. (The original app's cache had neither.)
"""

from __future__ import annotations

import datetime as dt

from throttled.clock import Clock
from throttled.db import queues as queues_sql
from throttled.db.engine import Database
from throttled.db.queues import CONFIG_CHANNEL, ConfigRow

__all__ = ["CONFIG_CHANNEL", "ConfigCache"]


class ConfigCache:
    """``await cache.get(portal_id, action_id)`` → the override or ``None``.

    Args:
        ttl_s: seconds a looked-up value (including "no override") is trusted.
    """

    def __init__(self, db: Database, clock: Clock, ttl_s: float = 60.0) -> None:
        self.db = db
        self.clock = clock
        self.ttl = dt.timedelta(seconds=ttl_s)
        self._entries: dict[tuple[int, int], tuple[ConfigRow | None, dt.datetime]] = {}
        self.lookups = 0

    async def get(self, portal_id: int, action_id: int | None) -> ConfigRow | None:
        """The override for (portal, action), from cache when fresh."""
        if action_id is None:
            return None  # shared queues have no single action to override
        key = (portal_id, action_id)
        now = self.clock.now()
        cached = self._entries.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        self.lookups += 1
        value = await self.db.transaction(queues_sql.get_config, portal_id, action_id)
        self._entries[key] = (value, now + self.ttl)
        return value

    def invalidate(self, payload: str | None) -> None:
        """Forget one entry (payload ``"portal:action"``) or, for ``None``, all of them."""
        if payload is None:
            self._entries.clear()
            return
        portal, _, action = payload.partition(":")
        try:
            self._entries.pop((int(portal), int(action)), None)
        except ValueError:
            self._entries.clear()
