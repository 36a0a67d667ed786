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
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from throttled.db import executions as executions_sql
from throttled.db import queues as queues_sql
from throttled.ingest.payload import Enrollment
from throttled.states import ExecutionState
from throttled.throttle.job import ensure_throttle_jobs
from throttled.throttle.policy import days_mask


def queue_settings(e: Enrollment) -> queues_sql.QueueSettings:
    """The queue row an enrollment asks for (its step's settings)."""
    step, hours = e.step, e.step.hours
    return queues_sql.QueueSettings(
        queue_id=str(e.queue_id), portal_id=e.portal_id,
        action_id=None if e.shared_name else e.action_id,
        max_throughput=step.max_throughput, time_period=step.time_period, time_unit=step.time_unit,
        mode=step.mode,
        release_days=days_mask(hours.days) if hours else None,
        release_start_minute=hours.start_minute if hours else None,
        release_end_minute=hours.end_minute if hours else None,
        time_zone=hours.time_zone if hours else None,
    )


@dataclass(frozen=True, slots=True)
class Stored:
    """What a group commit did: ``new`` callback ids, and the state of each one that was
    already stored (HubSpot sent its webhook again)."""

    new: set[str]
    repeated: dict[str, str]

    def state_of(self, callback_id: str) -> str:
        """The stored execution's state (``pending`` for a new one)."""
        return self.repeated.get(callback_id, ExecutionState.PENDING)


def store_enrollments(
    conn: Connection, enrollments: Sequence[Enrollment], now: dt.datetime, block_duration_s: int
) -> Stored:
    """Store a batch of enrollments (arrival order kept).

    A ``callback_id`` already stored (HubSpot retried) is skipped, so a repeated webhook is
    stored once; its current state is returned, for the answer. ``block_duration_s`` is how
    long HubSpot holds the block (``expires_at``). The last enrollment of a batch sets its
    queue's settings (the user may have edited the step; for a shared queue, the step that
    enrolled last).
    """
    queues = {str(e.queue_id): queue_settings(e) for e in enrollments}
    ordered = [queues[q] for q in sorted(queues)]
    queues_sql.upsert_queues(conn, ordered, now)
    new = executions_sql.insert_executions(
        conn,
        [
            executions_sql.NewExecution(e.callback_id, e.portal_id, str(e.queue_id), e.object_type, e.object_id,
                                        e.input_fields, e.priority, e.not_before)
            for e in enrollments
        ],
        now,
        now + dt.timedelta(seconds=block_duration_s),
    )
    repeated = executions_sql.states_of(conn, sorted({e.callback_id for e in enrollments} - new))
    ensure_throttle_jobs(conn, [(q.queue_id, q.portal_id, q.action_id) for q in ordered], now)
    return Stored(new, repeated)
