"""The throttle job: one live job per queue runs the throttle worker (``worker.py``).

Its kind and unique key, and the three ways it comes to life: ensured with the executions
of a group commit (ingest), ensured by the cleaner for an orphaned queue, woken when an
operator changes the queue. The key's partial unique index makes "one job per queue" a fact
of the database, not a check-then-insert (design invariant 3).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.engine import Connection

from throttled.db import jobs as jobs_sql

#: The throttle worker's job kind.
THROTTLE_JOB_KIND = "throttle"
#: A throttle job must outlive outages (snoozes spend no attempts); orphan repair backs it up.
THROTTLE_JOB_ATTEMPTS = 1000


def throttle_job_key(queue_id: str) -> str:
    """Unique key of a queue's throttle job: one live job per queue."""
    return f"throttle:{queue_id}"


def ensure_throttle_jobs(conn: Connection, queues: Sequence[tuple[str, int, int | None]], now: dt.datetime) -> int:
    """Make sure each ``(queue_id, portal_id, action_id)`` has a live throttle job, in one
    statement (queue-id order); returns how many had to be created."""
    return jobs_sql.ensure_unique_jobs(
        conn, THROTTLE_JOB_KIND,
        [(throttle_job_key(q), portal, {"queue_id": q, "action_id": action}) for q, portal, action in sorted(queues)],
        now, max_attempts=THROTTLE_JOB_ATTEMPTS,
    )


def ensure_throttle_job(conn: Connection, queue_id: str, portal_id: int, action_id: int | None, now: dt.datetime) -> bool:
    """Make sure the queue has a live throttle job; True if one had to be created."""
    _, inserted = jobs_sql.insert_job(
        conn, THROTTLE_JOB_KIND, {"queue_id": queue_id, "action_id": action_id}, now,
        unique_key=throttle_job_key(queue_id), portal_id=portal_id, max_attempts=THROTTLE_JOB_ATTEMPTS,
    )
    return inserted


def wake_throttle_job(conn: Connection, queue_id: str | Sequence[str], now: dt.datetime) -> bool:
    """Run the queue's job now (its settings or state changed), if it is waiting; many
    queues (a queue and its partitions) in one statement."""
    ids = [queue_id] if isinstance(queue_id, str) else queue_id
    return jobs_sql.wake_job(conn, [throttle_job_key(q) for q in ids], now)
