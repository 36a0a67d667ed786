"""Keeps a :class:`~throttled.clock.DatabaseClock` on the database's time.

At start it takes a few readings (start-up fails if the database cannot be read, as it
would for the schema anyway); then one every :data:`SYNC_EVERY_S` seconds, so the host's
monotonic clock carries the time forward for at most that long (a few milliseconds of drift
at NTP's 500 ppm slew limit). A host clock more than :data:`SKEW_WARNING_S` from the
database's is logged (at most every ten minutes) and shown as
``throttled_clock_skew_seconds``: decisions do not depend on it, but a skewed host usually
means NTP is broken somewhere.
"""

from __future__ import annotations

import time

import structlog
import trio

from throttled.clock import DatabaseClock
from throttled.db.engine import Database, DatabaseUnavailable
from throttled.db.time import timed_database_now
from throttled.service.metrics import Metrics

log = structlog.get_logger("throttled.clock")

SYNC_EVERY_S = 10.0
START_READINGS = 3
SKEW_WARNING_S = 1.0
WARN_EVERY_S = 600.0


async def read_once(clock: DatabaseClock, db: Database) -> float:
    """Take one reading of the database's time (timed around its statement alone, so a busy
    pool does not make it uncertain); returns the host's skew, seconds.

    Raises:
        DatabaseUnavailable: the database could not be read.
    """
    sent, database_time, received = await db.transaction(timed_database_now, clock.monotonic)
    return clock.calibrate(sent, database_time, received)


async def keep_in_sync(clock: DatabaseClock, db: Database, metrics: Metrics | None = None, *,
                       task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Read the database's time now (a few times) and then every :data:`SYNC_EVERY_S` s.

    Reports started once the clock has a reading.
    Raises:
        DatabaseUnavailable: at start only (later outages are logged and retried).
    """
    for _ in range(START_READINGS):
        skew = await read_once(clock, db)
    warned_at = -WARN_EVERY_S
    warned_at = _report(clock, skew, metrics, warned_at)
    log.info("clock.synced", skew_s=round(skew, 3), uncertainty_ms=round(clock.uncertainty_s * 1000, 2))
    task_status.started()
    while True:
        await trio.sleep(SYNC_EVERY_S)
        try:
            skew = await read_once(clock, db)
        except DatabaseUnavailable:
            continue  # the monotonic clock carries on; the next reading corrects it
        warned_at = _report(clock, skew, metrics, warned_at)


def _report(clock: DatabaseClock, skew: float, metrics: Metrics | None, warned_at: float) -> float:
    if metrics is not None:
        metrics.clock_skew.set(skew)
    now = time.monotonic()
    if abs(skew) > SKEW_WARNING_S and now - warned_at >= WARN_EVERY_S:
        log.warning("clock.host_skewed", skew_s=round(skew, 3),
                    note="decisions use the database's time; check NTP on this host and the database server")
        return now
    return warned_at
