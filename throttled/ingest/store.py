"""One group commit of enrollments: queue rows, executions and each queue's job, together.

Runs inside one transaction (the original app used two and could lose the job). Order
matters: each queue row is upserted — and so row-locked — *before* its job is ensured, so
the worker's "queue empty → finish job" step, which takes the same lock, is either wholly
before this commit (and the job is recreated here) or wholly after it (and sees the new
executions). See design invariant 3.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from throttled.db import executions as executions_sql
from throttled.db import named_throttles as named_sql
from throttled.db import queues as queues_sql
from throttled.hubspot import outputs
from throttled.ingest.holds import Hold, plan_holds
from throttled.ingest.inputs import MAX_PARTITION_KEY
from throttled.ingest.named import resolve
from throttled.ingest.payload import Enrollment
from throttled.states import ExecutionState
from throttled.throttle.block_length import BlockLimits
from throttled.throttle.job import ensure_throttle_jobs
from throttled.throttle.policy import stored_columns
from throttled.throttle.step import StepSettings


def queue_settings(e: Enrollment) -> list[queues_sql.QueueSettings]:
    """The queue rows an enrollment asks for (its step's settings, resolved: ``named.py``):
    its queue's, and for a partition also its parent's (the step's queue, which lists and
    controls its partitions)."""
    assert e.step is not None, "named.resolve gave it settings"
    action_id = None if e.shared_name else e.action_id
    queue_id = e.queue_id
    if queue_id.partition is None:
        return [step_row(str(queue_id), e.portal_id, action_id, e.step)]
    parent = str(queue_id.parent)
    return [step_row(parent, e.portal_id, action_id, e.step),
            step_row(str(queue_id), e.portal_id, action_id, e.step, parent=parent, key=_shown(e.partition_key))]


def _shown(key: str | None) -> str | None:
    """The partition key as kept for display: its first characters, printable."""
    if key is None:
        return None
    return "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in key[:MAX_PARTITION_KEY])


def step_row(queue_id: str, portal_id: int, action_id: int | None, step: StepSettings, *,
             parent: str | None = None, key: str | None = None) -> queues_sql.QueueSettings:
    """The queue row of ``step``'s settings (``action_id`` ``None`` for a shared queue; a
    partition's ``parent`` queue id and ``key``)."""
    return queues_sql.QueueSettings(queue_id=queue_id, portal_id=portal_id, action_id=action_id, **stored_columns(step),
                                    parent_queue_id=parent, partition_key=key)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a stored (or refused) enrollment's webhook is answered from: the execution's
    ``state`` and the end of its block (``expires_at``, aware UTC); for a new one the block
    chosen; ``refused`` when no block could cover its forecast release (nothing was stored)."""

    state: str
    expires_at: dt.datetime | None = None
    refused: str | None = None  # why it was refused (``holds.QUEUE_TOO_LONG``, …), or None
    release: dt.datetime | None = None  # a refused one's forecast release (None: past the horizon)
    block: dt.timedelta | None = None  # a new one's block, as chosen (answered as is)
    outputs: dict[str, str] | None = None  # a released one's: what its completion said


@dataclass(frozen=True, slots=True)
class Stored:
    """What a group commit did: ``new`` callback ids held, the answer for every callback id
    of the batch, and the queues where a record went ahead of lower priorities."""

    new: set[str]
    answers: dict[str, Answer]
    jumped: set[str] = field(default_factory=set)

    def answer_for(self, callback_id: str) -> Answer:
        """The answer for one enrollment of the batch."""
        return self.answers[callback_id]


def store_enrollments(
    conn: Connection, enrollments: Sequence[Enrollment], now: dt.datetime, limits: BlockLimits
) -> Stored:
    """Store a batch of enrollments (arrival order kept).

    A ``callback_id`` already stored (HubSpot retried) is skipped, so a repeated webhook is
    stored once; its current state and block are returned, for the answer. A new one is
    held for the block its forecast release needs (``ingest/holds.py``) or refused — not
    stored, counted on its queue — when no block up to ``limits.longest`` covers it. One
    naming a throttle waits under the named throttle's settings, or is refused when that one
    is inactive or deleted (``named.py``). The last enrollment of a batch sets its queue's
    settings (the user may have edited the step; for an ad-hoc shared queue, the step that
    enrolled last).
    """
    named = named_sql.lookup(conn, {(e.portal_id, e.shared_name) for e in enrollments if e.shared_name})
    resolved = {e.callback_id: resolve(e, named.get((e.portal_id, e.shared_name or ""))) for e in enrollments}
    enrollments = [r for r in resolved.values() if not isinstance(r, str)]
    queues = {row.queue_id: row for e in enrollments for row in queue_settings(e)}
    ordered = [queues[q] for q in sorted(queues)]
    queues_sql.upsert_queues(conn, ordered, now)
    known = executions_sql.stored(conn, sorted(resolved))
    fresh = list({e.callback_id: e for e in enrollments if e.callback_id not in known}.values())
    plan = plan_holds(conn, fresh, now, limits)
    holds = plan.holds
    held = [e for e in fresh if not holds[e.callback_id].refused]
    new = executions_sql.insert_executions(
        conn,
        [
            executions_sql.NewExecution(e.callback_id, e.portal_id, str(e.queue_id), e.object_type, e.object_id,
                                        e.input_fields, now + _block(holds[e.callback_id]), e.priority, e.not_before,
                                        holds[e.callback_id].position)
            for e in held
        ],
        now,
    )
    refused = Counter(str(e.queue_id) for e in fresh if holds[e.callback_id].refused)
    queues_sql.note_refused(conn, dict(refused), now)
    waiting = {str(e.queue_id) for e in enrollments}  # a parent of partitions alone needs no job
    ensure_throttle_jobs(conn, [(q.queue_id, q.portal_id, q.action_id) for q in ordered if q.queue_id in waiting], now)
    answers = {cid: Answer(s.state, s.expires_at, outputs=_release_outputs(s)) for cid, s in known.items()}
    for cid, why in resolved.items():  # its named throttle cannot hold it (a copy already held is answered as held)
        if isinstance(why, str) and cid not in known:
            answers[cid] = Answer(ExecutionState.PENDING, refused=why)
    for e in fresh:
        hold = holds[e.callback_id]
        answers[e.callback_id] = (Answer(ExecutionState.PENDING, refused=hold.reason, release=hold.release) if hold.block is None
                                  else Answer(ExecutionState.PENDING, now + hold.block, block=hold.block))
    return Stored(new, answers, plan.jumped)


def _release_outputs(s: executions_sql.Stored) -> dict[str, str] | None:
    if s.state != ExecutionState.RELEASED or s.sent_at is None:
        return None
    return outputs.release_fields(s.received_at, s.sent_at, s.arrival_position)


def _block(hold: Hold) -> dt.timedelta:
    assert hold.block is not None  # only held enrollments are inserted
    return hold.block
