"""The scheduler and throttle worker under virtual time, for tests that drive releases
without HTTP towards HubSpot (the one copy; the semantics and block-length suites share it).

Polling, heartbeat and rescue run daily (virtual), so week-long spans stay cheap and every
prompt reaction must come from a NOTIFY or the worker's own snooze arithmetic.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import trio

from tests.support.portal_side import PortalSide
from throttled.clock import TrioClock
from throttled.db.engine import Database
from throttled.jobs.scheduler import Scheduler, SchedulerConfig
from throttled.throttle.job import THROTTLE_JOB_KIND
from throttled.throttle.worker import ThrottleWorker


async def start_worker(nursery: trio.Nursery, db: Database, clock: TrioClock, portal: PortalSide,
                       overrides: Any = None) -> None:
    """Start a scheduler whose throttle worker hands releases to ``portal``."""
    await warm_pool(db)
    worker = ThrottleWorker(db, clock, portal.submit, **({"overrides": overrides} if overrides else {}))
    config = SchedulerConfig(workers=8, poll_interval_s=86400.0, lease_s=86400.0, rescue_interval_s=86400.0)
    await nursery.start(Scheduler(db, clock, {THROTTLE_JOB_KIND: worker}, config).run)


async def warm_pool(db: Database, connections: int = 8) -> None:
    """Open the pool's connections before virtual time matters: a connection opened later
    can take longer than the autojump threshold, and the clock would jump meanwhile."""
    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(db.transaction, lambda conn: conn.execute(sa.text("SELECT pg_sleep(0.05)")))
