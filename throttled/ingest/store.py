"""One group commit of enrollments: queue rows, executions and each queue's job, together.

Runs inside one transaction (the original app used two and could lose the job). Order
matters: each queue row is upserted — and so row-locked — *before* its job is ensured, so
the worker's "queue empty → finish job" step, which takes the same lock, is either wholly
before this commit (and the job is recreated here) or wholly after it (and sees the new
executions). See design invariant 3.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.engine import Connection

from throttled.db import jobs as jobs_sql
from throttled.db import queues as queues_sql
from throttled.ingest.payload import Enrollment

#: The throttle worker's job kind, and its unique key per queue.
THROTTLE_JOB_KIND = "throttle"


def throttle_job_key(queue_id: str) -> str:
    """Unique key of a queue's throttle job: one live job per queue."""
    return f"throttle:{queue_id}"


def store_enrollments(
    conn: Connection, enrollments: Sequence[Enrollment], now: dt.datetime, block_duration_s: int
) -> int:
    """Store a batch of enrollments (arrival order kept); returns how many were new.

    A ``callback_id`` already stored (HubSpot retried) is skipped, so a repeated webhook is
    stored once. ``block_duration_s`` is how long HubSpot holds the block (``expires_at``).
    """
    queues: dict[str, queues_sql.QueueRow] = {}
    for e in enrollments:
        queue_id = str(e.queue_id)
        # The last webhook of a batch sets the step's rate (the user may have edited it).
        queues[queue_id] = queues_sql.QueueRow(
            queue_id, e.portal_id, e.max_throughput, e.time_period, e.time_unit, "burst", "active"
        )
    ordered = [queues[q] for q in sorted(queues)]
    queues_sql.upsert_queues(conn, ordered, now)
    new = queues_sql.insert_executions(
        conn,
        [
            queues_sql.NewExecution(e.callback_id, e.portal_id, str(e.queue_id), e.object_type, e.object_id, e.input_fields)
            for e in enrollments
        ],
        now,
        now + dt.timedelta(seconds=block_duration_s),
    )
    for queue in ordered:
        ensure_throttle_job(conn, queue.queue_id, queue.portal_id, now)
    return new


def ensure_throttle_job(conn: Connection, queue_id: str, portal_id: int, now: dt.datetime) -> bool:
    """Make sure the queue has a live throttle job; True if one had to be created."""
    _, inserted = jobs_sql.insert_job(
        conn,
        THROTTLE_JOB_KIND,
        {"queue_id": queue_id},
        now,
        unique_key=throttle_job_key(queue_id),
        portal_id=portal_id,
        max_attempts=1000,  # a throttle job must outlive outages; orphan repair backs it up
    )
    return inserted
