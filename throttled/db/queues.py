"""Every SQL statement of the queue family: ``queues``, ``action_executions``, ``throttle_configs``.

Execution states: pending → releasing (handed to a portal queue, leased) → released (HubSpot
acknowledged; ``released_at`` is the acknowledgement time the rate window counts) — or back
to pending when the lease runs out, failed when HubSpot rejects the callback for good,
expired when HubSpot's block ran out first.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection


@dataclass(frozen=True, slots=True)
class QueueRow:
    """A queue's settings as stored."""

    queue_id: str
    portal_id: int
    max_throughput: int
    time_period: int
    time_unit: str
    mode: str
    state: str


@dataclass(frozen=True, slots=True)
class NewExecution:
    """One execution to store (from a parsed enrollment)."""

    callback_id: str
    portal_id: int
    queue_id: str
    object_type: str | None
    object_id: str | None
    input_fields: dict


@dataclass(frozen=True, slots=True)
class Release:
    """An execution handed to a portal queue for completion, leased until ``lease_until``."""

    callback_id: str
    portal_id: int
    queue_id: str
    lease_until: dt.datetime


def upsert_queues(conn: Connection, queues: Sequence[QueueRow], now: dt.datetime) -> None:
    """Create each queue or update its rate; always row-locks it for this transaction.

    Callers pass queues sorted by id, so concurrent batches lock in one order (no deadlock).
    The lock is what serializes ingest with the worker's "queue empty → finish" step
    (design invariant 3). The ``WHERE`` skips writing a row whose rate did not change; a
    conflicting row is locked either way (PostgreSQL ``ON CONFLICT DO UPDATE`` semantics).
    """
    for q in queues:
        conn.execute(
            text(
                """INSERT INTO queues AS q (queue_id, portal_id, max_throughput, time_period,
                                           time_unit, mode, created_at, updated_at)
                   VALUES (:queue_id, :portal_id, :max_throughput, :time_period, :time_unit,
                           :mode, :now, :now)
                   ON CONFLICT (queue_id) DO UPDATE
                   SET max_throughput = excluded.max_throughput, time_period = excluded.time_period,
                       time_unit = excluded.time_unit, updated_at = excluded.updated_at
                   WHERE (q.max_throughput, q.time_period, q.time_unit)
                         IS DISTINCT FROM (excluded.max_throughput, excluded.time_period, excluded.time_unit)"""
            ),
            {
                "queue_id": q.queue_id, "portal_id": q.portal_id, "max_throughput": q.max_throughput,
                "time_period": q.time_period, "time_unit": q.time_unit, "mode": q.mode, "now": now,
            },
        )


def insert_executions(
    conn: Connection, executions: Sequence[NewExecution], now: dt.datetime, expires_at: dt.datetime
) -> int:
    """Store executions in the given (arrival) order; a known ``callback_id`` is skipped.

    Returns how many rows were new.
    """
    if not executions:
        return 0
    result = conn.execute(
        text(
            """INSERT INTO action_executions (callback_id, portal_id, queue_id, object_type,
                                              object_id, input_fields, received_at, expires_at)
               SELECT e.callback_id, e.portal_id, e.queue_id, e.object_type, e.object_id,
                      e.input_fields, :now, :expires_at
               FROM unnest(CAST(:callback_ids AS text[]), CAST(:portal_ids AS bigint[]),
                           CAST(:queue_ids AS text[]), CAST(:object_types AS text[]),
                           CAST(:object_ids AS text[]), CAST(:inputs AS jsonb[]))
                    WITH ORDINALITY AS e(callback_id, portal_id, queue_id, object_type,
                                         object_id, input_fields, ord)
               ORDER BY e.ord  -- seq follows arrival order
               ON CONFLICT (callback_id) DO NOTHING"""
        ),
        {
            "callback_ids": [e.callback_id for e in executions],
            "portal_ids": [e.portal_id for e in executions],
            "queue_ids": [e.queue_id for e in executions],
            "object_types": [e.object_type for e in executions],
            "object_ids": [e.object_id for e in executions],
            "inputs": [json.dumps(e.input_fields) for e in executions],
            "now": now,
            "expires_at": expires_at,
        },
    )
    return result.rowcount


def lock_queue(conn: Connection, queue_id: str) -> QueueRow | None:
    """Row-lock the queue for this transaction and return it (``None`` if unknown)."""
    row = conn.execute(
        text(
            """SELECT queue_id, portal_id, max_throughput, time_period, time_unit, mode, state
               FROM queues WHERE queue_id = :queue_id FOR UPDATE"""
        ),
        {"queue_id": queue_id},
    ).first()
    return QueueRow(*row) if row else None


def requeue_lapsed_releases(conn: Connection, queue_id: str, now: dt.datetime) -> int:
    """Executions stuck in 'releasing' past their lease (daemon died, HubSpot unreachable)
    go back to pending, keeping their place in line."""
    return conn.execute(
        text(
            """UPDATE action_executions SET state = 'pending', lease_until = NULL
               WHERE queue_id = :queue_id AND state = 'releasing' AND lease_until < :now"""
        ),
        {"queue_id": queue_id, "now": now},
    ).rowcount


def recent_releases(conn: Connection, queue_id: str, since: dt.datetime, limit: int) -> list[dt.datetime]:
    """Acknowledgement times after ``since``, newest first, at most ``limit``."""
    return list(
        conn.execute(
            text(
                """SELECT released_at FROM action_executions
                   WHERE queue_id = :queue_id AND state = 'released' AND released_at > :since
                   ORDER BY released_at DESC LIMIT :limit"""
            ),
            {"queue_id": queue_id, "since": since, "limit": limit},
        ).scalars()
    )


def count_releasing(conn: Connection, queue_id: str) -> int:
    """Executions handed out and not yet acknowledged."""
    return conn.execute(
        text("SELECT count(*) FROM action_executions WHERE queue_id = :queue_id AND state = 'releasing'"),
        {"queue_id": queue_id},
    ).scalar_one()


def take_pending(
    conn: Connection, queue_id: str, limit: int, now: dt.datetime, lease_until: dt.datetime
) -> list[Release]:
    """Mark up to ``limit`` pending, unexpired executions 'releasing' in arrival order."""
    rows = conn.execute(
        text(
            """WITH next AS (
                   SELECT callback_id FROM action_executions
                   WHERE queue_id = :queue_id AND state = 'pending' AND expires_at > :now
                   ORDER BY seq LIMIT :limit FOR UPDATE SKIP LOCKED)
               UPDATE action_executions e SET state = 'releasing', lease_until = :lease_until
               FROM next WHERE e.callback_id = next.callback_id
               RETURNING e.callback_id, e.portal_id, e.queue_id, e.seq"""
        ),
        {"queue_id": queue_id, "limit": limit, "now": now, "lease_until": lease_until},
    ).all()
    rows.sort(key=lambda r: r.seq)
    return [Release(r.callback_id, r.portal_id, r.queue_id, lease_until) for r in rows]


def has_pending(conn: Connection, queue_id: str, now: dt.datetime) -> bool:
    """Whether the queue holds a pending, unexpired execution."""
    return conn.execute(
        text(
            """SELECT EXISTS (SELECT 1 FROM action_executions
                              WHERE queue_id = :queue_id AND state = 'pending' AND expires_at > :now)"""
        ),
        {"queue_id": queue_id, "now": now},
    ).scalar_one()


def mark_released(conn: Connection, callback_ids: Sequence[str], acked_at: dt.datetime) -> int:
    """HubSpot acknowledged these completions at ``acked_at``."""
    return conn.execute(
        text(
            """UPDATE action_executions SET state = 'released', released_at = :acked_at,
                                            lease_until = NULL, attempts = attempts + 1
               WHERE callback_id = ANY(:ids) AND state IN ('releasing', 'pending')"""
        ),
        {"ids": list(callback_ids), "acked_at": acked_at},
    ).rowcount


def mark_finished(conn: Connection, callback_ids: Sequence[str], state: str, reason: str) -> int:
    """End these executions without a release: ``failed`` (HubSpot rejected the callback for
    good) or ``expired`` (HubSpot no longer knows it / its block ran out)."""
    if state not in ("failed", "expired"):
        raise ValueError(f"not a final state without release: {state!r}")
    return conn.execute(
        text(
            """UPDATE action_executions SET state = :state, lease_until = NULL,
                                            attempts = attempts + 1, last_failure_reason = :reason
               WHERE callback_id = ANY(:ids) AND state = 'releasing'"""
        ),
        {"ids": list(callback_ids), "state": state, "reason": reason[:500]},
    ).rowcount


def note_attempt_failed(conn: Connection, callback_ids: Sequence[str], reason: str) -> int:
    """A transient failure: count the attempt and keep the reason; the rows stay
    'releasing' until their lease lapses, then go back to pending (no enrollment lost)."""
    return conn.execute(
        text(
            """UPDATE action_executions SET attempts = attempts + 1, last_failure_reason = :reason
               WHERE callback_id = ANY(:ids) AND state = 'releasing'"""
        ),
        {"ids": list(callback_ids), "reason": reason[:500]},
    ).rowcount


def expire_overdue(conn: Connection, now: dt.datetime, limit: int = 1000) -> int:
    """Pending executions whose HubSpot block ran out are marked expired (never completed)."""
    return conn.execute(
        text(
            """UPDATE action_executions SET state = 'expired'
               WHERE callback_id IN (SELECT callback_id FROM action_executions
                                     WHERE state = 'pending' AND expires_at <= :now
                                     LIMIT :limit FOR UPDATE SKIP LOCKED)"""
        ),
        {"now": now, "limit": limit},
    ).rowcount


def queues_without_live_job(conn: Connection, job_key_prefix: str) -> list[tuple[str, int]]:
    """Queues holding pending executions but no live job keyed ``prefix + queue_id``.

    By construction there are none (invariant 3); the cleaner repairs any it finds.
    """
    rows = conn.execute(
        text(
            """SELECT q.queue_id, q.portal_id FROM queues q
               WHERE EXISTS (SELECT 1 FROM action_executions e
                             WHERE e.queue_id = q.queue_id AND e.state IN ('pending', 'releasing'))
                 AND NOT EXISTS (SELECT 1 FROM jobs j
                                 WHERE j.unique_key = :prefix || q.queue_id
                                   AND j.state IN ('available', 'scheduled', 'executing', 'retryable'))"""
        ),
        {"prefix": job_key_prefix},
    ).all()
    return [(r.queue_id, r.portal_id) for r in rows]


def execution_counts(conn: Connection, queue_ids: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """``{queue_id: {state: count}}`` for the given queues (all when ``None``)."""
    sql = "SELECT queue_id, state, count(*) AS n FROM action_executions"
    params: dict = {}
    if queue_ids is not None:
        sql += " WHERE queue_id = ANY(:ids)"
        params["ids"] = list(queue_ids)
    counts: dict[str, dict[str, int]] = {}
    for r in conn.execute(text(sql + " GROUP BY queue_id, state"), params):
        counts.setdefault(r.queue_id, {})[r.state] = r.n
    return counts


def list_queues(conn: Connection) -> list[QueueRow]:
    """Every queue, by id."""
    rows = conn.execute(
        text(
            """SELECT queue_id, portal_id, max_throughput, time_period, time_unit, mode, state
               FROM queues ORDER BY queue_id"""
        )
    ).all()
    return [QueueRow(*r) for r in rows]
