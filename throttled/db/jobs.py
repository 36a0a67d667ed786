"""Every SQL statement of the job table (``jobs``), named after what it does.

States (Oban/River): available, scheduled, executing, retryable (live) and completed,
discarded, cancelled (final). Each transition is one statement that names the state it
expects — and, for a running job, the owner that claimed it — so a transition that finds the
job elsewhere (a late rescue after a completion, say) changes nothing and reports ``False``.

Size: over 400 lines on purpose — all SQL of one table family lives in one module (the
house rule), so every statement that can change a job's state is in this file.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from throttled.db.nodes import DEAD_OWNER
from throttled.states import LIVE_JOBS, JobState

#: Channel the enqueuer NOTIFYs on (delivered at commit) and the scheduler LISTENs to.
NOTIFY_CHANNEL = "throttled_jobs"
LIVE_STATES = LIVE_JOBS
_LIVE_SQL = "state IN ('available', 'scheduled', 'executing', 'retryable')"
_DUE_SQL = "state IN ('available', 'scheduled', 'retryable')"
# Statements that change several jobs lock them in id order first, as a batched throttle run
# does (lock_owned_jobs): a plain UPDATE locks in scan order, and the heartbeat's renewal
# deadlocked with a run that way (bench/release_accuracy).
_LOCKED = "WITH locked AS (SELECT id FROM jobs WHERE {where} ORDER BY id FOR UPDATE) "
_OWNED = "id = ANY(:ids) AND state = 'executing' AND attempted_by = :owner"


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed job as its handler sees it. ``attempt`` is 1 on the first run;
    ``scheduled_at`` is when it fell due (UTC), ``None`` where a test builds one by hand."""

    id: int
    kind: str
    args: dict[str, Any]
    attempt: int
    max_attempts: int
    snoozed: int
    unique_key: str | None
    portal_id: int | None
    scheduled_at: dt.datetime | None = None


def insert_job(
    conn: Connection,
    kind: str,
    args: dict[str, Any],
    now: dt.datetime,
    *,
    unique_key: str | None = None,
    scheduled_at: dt.datetime | None = None,
    priority: int = 0,
    max_attempts: int = 20,
    portal_id: int | None = None,
) -> tuple[int, bool]:
    """Insert a job, or find the live job holding ``unique_key``.

    Returns ``(job_id, inserted)``; never raises on a duplicate and never makes a second
    live job for one key (the partial unique index decides). NOTIFYs when a new job is due.
    """
    scheduled_at = scheduled_at or now
    while True:
        row = conn.execute(
            text(
                f"""INSERT INTO jobs (kind, args, state, priority, max_attempts, unique_key,
                                      portal_id, scheduled_at, inserted_at)
                VALUES (:kind, CAST(:args AS jsonb), :state, :priority, :max_attempts,
                        :unique_key, :portal_id, :scheduled_at, :now)
                ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND {_LIVE_SQL}
                DO NOTHING RETURNING id"""
            ),
            {
                "kind": kind, "args": json.dumps(args), "priority": priority,
                "state": JobState.AVAILABLE if scheduled_at <= now else JobState.SCHEDULED,
                "max_attempts": max_attempts, "unique_key": unique_key,
                "portal_id": portal_id, "scheduled_at": scheduled_at, "now": now,
            },
        ).first()
        if row is not None:
            if scheduled_at <= now:
                notify(conn)
            return row.id, True
        existing = conn.execute(
            text(f"SELECT id FROM jobs WHERE unique_key = :key AND {_LIVE_SQL}"), {"key": unique_key}
        ).first()
        if existing is not None:
            return existing.id, False
        # The live job finished between our INSERT and SELECT: try the insert again.


def ensure_unique_jobs(
    conn: Connection, kind: str, jobs: list[tuple[str, int | None, dict[str, Any]]], now: dt.datetime,
    *, max_attempts: int = 20,
) -> int:
    """Make sure a live job exists for each ``(unique_key, portal_id, args)``, in one
    statement; returns how many were created (and NOTIFYs if any). Keys already held by a
    live job are skipped — the partial unique index decides, never a check-then-insert."""
    if not jobs:
        return 0
    created = conn.execute(
        text(
            f"""INSERT INTO jobs (kind, args, state, max_attempts, unique_key, portal_id, scheduled_at, inserted_at)
                SELECT :kind, u.args, 'available', :max_attempts, u.unique_key, u.portal_id, :now, :now
                FROM unnest(CAST(:keys AS text[]), CAST(:portals AS bigint[]), CAST(:args AS jsonb[]))
                     AS u(unique_key, portal_id, args)
                ORDER BY u.unique_key
                ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND {_LIVE_SQL} DO NOTHING"""
        ),
        {"kind": kind, "max_attempts": max_attempts, "now": now,
         "keys": [k for k, _, _ in jobs], "portals": [p for _, p, _ in jobs], "args": [json.dumps(a) for _, _, a in jobs]},
    ).rowcount
    if created:
        notify(conn)
    return created


def notify(conn: Connection) -> None:
    """NOTIFY the scheduler channel; delivered when the transaction commits."""
    conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


def stage_due_jobs(conn: Connection, now: dt.datetime, limit: int = 1000) -> int:
    """Staging: scheduled and retryable jobs whose time has come become available."""
    return conn.execute(
        text(
            """UPDATE jobs SET state = 'available'
               WHERE id IN (SELECT id FROM jobs
                            WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= :now
                            ORDER BY scheduled_at LIMIT :limit FOR UPDATE SKIP LOCKED)"""
        ),
        {"now": now, "limit": limit},
    ).rowcount


def claim_due_jobs(
    conn: Connection, owner: str, limit: int, now: dt.datetime, lease_until: dt.datetime
) -> list[Job]:
    """Claim up to ``limit`` available jobs for ``owner``: state executing, attempt + 1, leased.

    Order: priority, scheduled_at, id. ``FOR UPDATE SKIP LOCKED`` lets several schedulers
    claim at once without waiting on or double-claiming each other's rows. Due scheduled
    and retryable jobs are staged first, in the same transaction.
    """
    stage_due_jobs(conn, now)
    rows = conn.execute(
        text(
            """WITH due AS (
                    SELECT id FROM jobs
                    WHERE state = 'available' AND scheduled_at <= :now
                    ORDER BY priority, scheduled_at, id
                    LIMIT :limit
                    FOR UPDATE SKIP LOCKED)
                UPDATE jobs SET state = 'executing', attempt = jobs.attempt + 1,
                                attempted_at = :now, attempted_by = :owner,
                                leased_until = :lease_until
                FROM due WHERE jobs.id = due.id
                RETURNING jobs.id, jobs.kind, jobs.args, jobs.attempt, jobs.max_attempts,
                          jobs.snoozed, jobs.unique_key, jobs.portal_id, jobs.priority,
                          jobs.scheduled_at"""
        ),
        {"owner": owner, "limit": limit, "now": now, "lease_until": lease_until},
    ).all()
    rows = sorted(rows, key=lambda r: (r.priority, r.scheduled_at, r.id))
    return [
        Job(r.id, r.kind, r.args, r.attempt, r.max_attempts, r.snoozed, r.unique_key, r.portal_id, r.scheduled_at)
        for r in rows
    ]


def next_due_at(conn: Connection) -> dt.datetime | None:
    """When the earliest live, not-running job becomes due (``None`` if there is none)."""
    return conn.execute(text(f"SELECT min(scheduled_at) FROM jobs WHERE {_DUE_SQL}")).scalar()


def renew_leases(conn: Connection, owner: str, job_ids: list[int], lease_until: dt.datetime) -> set[int]:
    """Extend the leases of ``owner``'s running jobs; returns the ids it still holds."""
    if not job_ids:
        return set()
    rows = conn.execute(
        text(
            _LOCKED.format(where=_OWNED)
            + """UPDATE jobs SET leased_until = :lease_until FROM locked WHERE jobs.id = locked.id
                 RETURNING jobs.id"""
        ),
        {"ids": job_ids, "owner": owner, "lease_until": lease_until},
    ).all()
    return {r.id for r in rows}


def lock_owned_job(conn: Connection, job_id: int, owner: str) -> bool:
    """Lock the job row if ``owner`` still runs it; ``False`` if it was rescued meanwhile."""
    return job_id in lock_owned_jobs(conn, [job_id], owner)


def lock_owned_jobs(conn: Connection, job_ids: Sequence[int], owner: str) -> set[int]:
    """Lock (in id order) the job rows ``owner`` still runs; returns their ids — any other
    was rescued meanwhile."""
    return set(conn.execute(
        text(f"SELECT id FROM jobs WHERE {_OWNED} ORDER BY id FOR UPDATE"),
        {"ids": list(job_ids), "owner": owner},
    ).scalars())


def complete_job(conn: Connection, job_id: int, owner: str, now: dt.datetime) -> bool:
    """executing → completed; ``False`` if ``owner`` no longer runs the job."""
    return _finish(conn, job_id, owner, JobState.COMPLETED, now, None)


def complete_jobs(conn: Connection, job_ids: Sequence[int], owner: str, now: dt.datetime) -> int:
    """executing → completed for many jobs in one statement (the scheduler's completer);
    returns how many ``owner`` still ran."""
    return conn.execute(
        text(_LOCKED.format(where=_OWNED)
             + """UPDATE jobs SET state = 'completed', finalized_at = :now, leased_until = NULL
                  FROM locked WHERE jobs.id = locked.id"""),
        {"ids": list(job_ids), "owner": owner, "now": now},
    ).rowcount


def snooze_jobs(conn: Connection, snoozes: Sequence[tuple[int, dt.datetime]], owner: str, now: dt.datetime) -> int:
    """:func:`snooze_job` for many ``(job_id, until)`` in one statement; returns how many
    ``owner`` still ran."""
    if not snoozes:
        return 0
    return conn.execute(
        text(_LOCKED.format(where=_OWNED)
             + """UPDATE jobs SET state = CASE WHEN s.until <= :now THEN 'available' ELSE 'scheduled' END,
                                 scheduled_at = s.until, attempt = attempt - 1, snoozed = snoozed + 1,
                                 leased_until = NULL
                  FROM locked, unnest(CAST(:ids AS bigint[]), CAST(:untils AS timestamptz[])) AS s(id, until)
                  WHERE jobs.id = locked.id AND s.id = locked.id"""),
        {"ids": [i for i, _ in snoozes], "untils": [u for _, u in snoozes], "owner": owner, "now": now},
    ).rowcount


def discard_job(conn: Connection, job_id: int, owner: str, now: dt.datetime, reason: str) -> bool:
    """executing → discarded, recording ``reason`` in ``errors``."""
    return _finish(conn, job_id, owner, JobState.DISCARDED, now, reason)


def cancel_job(conn: Connection, job_id: int, owner: str, now: dt.datetime, reason: str) -> bool:
    """executing → cancelled, recording ``reason`` in ``errors``."""
    return _finish(conn, job_id, owner, JobState.CANCELLED, now, reason)


def snooze_job(conn: Connection, job_id: int, owner: str, until: dt.datetime, now: dt.datetime) -> bool:
    """executing → scheduled at ``until``, giving the attempt back and counting a snooze."""
    result = conn.execute(
        text(
            """UPDATE jobs SET state = CASE WHEN :until <= :now THEN 'available' ELSE 'scheduled' END,
                              scheduled_at = :until, attempt = attempt - 1, snoozed = snoozed + 1,
                              leased_until = NULL
               WHERE id = :id AND state = 'executing' AND attempted_by = :owner"""
        ),
        {"id": job_id, "owner": owner, "until": until, "now": now},
    )
    return result.rowcount == 1


def retry_job(
    conn: Connection, job_id: int, owner: str, error: str, now: dt.datetime, retry_at: dt.datetime
) -> str | None:
    """A failed attempt: executing → retryable at ``retry_at``, or discarded when attempts
    are spent. Returns the new state, or ``None`` if ``owner`` no longer runs the job."""
    row = conn.execute(
        text(
            """UPDATE jobs SET
                 state = CASE WHEN attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END,
                 scheduled_at = :retry_at, leased_until = NULL,
                 finalized_at = CASE WHEN attempt >= max_attempts THEN :now END,
                 errors = errors || jsonb_build_array(jsonb_build_object(
                     'attempt', attempt, 'at', CAST(:now_text AS text), 'error', CAST(:error AS text)))
               WHERE id = :id AND state = 'executing' AND attempted_by = :owner
               RETURNING state"""
        ),
        {"id": job_id, "owner": owner, "error": error[:2000], "now": now,
         "now_text": now.isoformat(), "retry_at": retry_at},
    ).first()
    return row.state if row else None


def rescue_expired_leases(conn: Connection, now: dt.datetime, limit: int = 1000) -> tuple[int, int]:
    """Jobs whose lease ran out, or whose daemon is known dead (``nodes``), go back to
    available — or to discarded when that was their last attempt, with the error "lease
    expired" recorded.

    A job on a live daemon keeps its lease fresh through the heartbeat, so slowness alone
    never triggers this. Returns ``(rescued, discarded)``.
    """
    rows = conn.execute(
        text(
            f"""WITH expired AS (
                   SELECT id FROM jobs
                   WHERE state = 'executing'
                     AND (leased_until < :now OR {DEAD_OWNER.format(column="jobs.attempted_by")})
                   ORDER BY leased_until LIMIT :limit FOR UPDATE SKIP LOCKED)
               UPDATE jobs SET
                 state = CASE WHEN jobs.attempt >= jobs.max_attempts THEN 'discarded' ELSE 'available' END,
                 scheduled_at = :now, leased_until = NULL,
                 finalized_at = CASE WHEN jobs.attempt >= jobs.max_attempts THEN :now END,
                 errors = jobs.errors || jsonb_build_array(jsonb_build_object(
                     'attempt', jobs.attempt, 'at', CAST(:now_text AS text), 'error', text 'lease expired'))
               FROM expired WHERE jobs.id = expired.id
               RETURNING jobs.state"""
        ),
        {"now": now, "now_text": now.isoformat(), "limit": limit},
    ).all()
    discarded = sum(1 for r in rows if r.state == JobState.DISCARDED)
    return len(rows) - discarded, discarded


def hand_back_owned_jobs(conn: Connection, owner: str, now: dt.datetime) -> int:
    """On shutdown: hand ``owner``'s running jobs back (available now, attempt given back)."""
    return conn.execute(
        text(
            _LOCKED.format(where="state = 'executing' AND attempted_by = :owner")
            + """UPDATE jobs SET state = 'available', scheduled_at = :now, attempt = jobs.attempt - 1,
                                 leased_until = NULL
                 FROM locked WHERE jobs.id = locked.id"""
        ),
        {"owner": owner, "now": now},
    ).rowcount


def wake_job(conn: Connection, unique_key: str | Sequence[str], now: dt.datetime) -> bool:
    """Make the live jobs holding ``unique_key`` (one key, or many: a queue's partitions) due
    now if they are waiting (scheduled or retryable); NOTIFYs. A running job is left alone
    (it decides its own next run). Returns whether any was woken."""
    keys = [unique_key] if isinstance(unique_key, str) else list(unique_key)
    woken = conn.execute(
        text(
            _LOCKED.format(where="unique_key = ANY(:keys) AND state IN ('scheduled', 'retryable')")
            + "UPDATE jobs SET state = 'available', scheduled_at = :now FROM locked WHERE jobs.id = locked.id"
        ),
        {"keys": keys, "now": now},
    ).rowcount > 0
    if woken:
        notify(conn)
    return woken


def insert_slot_job(
    conn: Connection, kind: str, args: dict[str, Any], now: dt.datetime, slot_key: str, max_attempts: int = 3
) -> bool:
    """Insert a periodic job for one time slot unless that slot's job was ever inserted —
    in any state, so a slot whose job already completed is not run again. Returns whether
    it inserted. (Pruning forgets slots older than the job retention, long past.)"""
    seen = conn.execute(text("SELECT 1 FROM jobs WHERE unique_key = :key LIMIT 1"), {"key": slot_key}).first()
    if seen is not None:
        return False
    _, inserted = insert_job(conn, kind, args, now, unique_key=slot_key, max_attempts=max_attempts)
    return inserted


def prune_jobs(conn: Connection, before: dt.datetime, limit: int = 1000) -> int:
    """Delete up to ``limit`` completed, cancelled or discarded jobs finalized before
    ``before``. SKIP LOCKED: two pruners take different rows and never wait on each other."""
    return conn.execute(
        text(
            """DELETE FROM jobs WHERE id IN (
                   SELECT id FROM jobs
                   WHERE state IN ('completed', 'cancelled', 'discarded') AND finalized_at < :before
                   ORDER BY finalized_at LIMIT :limit FOR UPDATE SKIP LOCKED)"""
        ),
        {"before": before, "limit": limit},
    ).rowcount


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job as introspection shows it (CLI, admin API)."""

    id: int
    kind: str
    state: str
    args: dict[str, Any]
    attempt: int
    max_attempts: int
    snoozed: int
    unique_key: str | None
    scheduled_at: dt.datetime
    attempted_by: str | None
    errors: list[dict[str, Any]]


def list_jobs(conn: Connection, state: str | None = None, kind: str | None = None, limit: int = 100) -> list[JobInfo]:
    """Jobs, newest first, optionally only one state and/or kind."""
    rows = conn.execute(
        text(
            """SELECT id, kind, state, args, attempt, max_attempts, snoozed, unique_key,
                      scheduled_at, attempted_by, errors
               FROM jobs
               WHERE (CAST(:state AS text) IS NULL OR state = :state)
                 AND (CAST(:kind AS text) IS NULL OR kind = :kind)
               ORDER BY id DESC LIMIT :limit"""
        ),
        {"state": state, "kind": kind, "limit": limit},
    ).all()
    return [JobInfo(*r) for r in rows]


def get_job(conn: Connection, job_id: int) -> JobInfo | None:
    """One job as introspection shows it, or ``None``."""
    row = conn.execute(
        text(
            """SELECT id, kind, state, args, attempt, max_attempts, snoozed, unique_key,
                      scheduled_at, attempted_by, errors
               FROM jobs WHERE id = :id"""
        ),
        {"id": job_id},
    ).first()
    return JobInfo(*row) if row else None


def retry_now(conn: Connection, job_id: int, now: dt.datetime) -> bool:
    """An operator retries a discarded, cancelled or retryable job: available now, with one
    more attempt allowed if its attempts were spent. Live executing jobs are left alone, and
    so is a final job whose ``unique_key`` another live job holds now (reviving it would
    break "one live job per key")."""
    return conn.execute(
        text(
            f"""UPDATE jobs SET state = 'available', scheduled_at = :now, finalized_at = NULL,
                               max_attempts = GREATEST(max_attempts, attempt + 1)
                WHERE id = :id AND state IN ('discarded', 'cancelled', 'retryable', 'scheduled')
                  AND (unique_key IS NULL OR NOT EXISTS (
                      SELECT 1 FROM jobs AS live
                      WHERE live.unique_key = jobs.unique_key AND live.id <> jobs.id AND live.{_LIVE_SQL}))"""
        ),
        {"id": job_id, "now": now},
    ).rowcount == 1


def cancel_now(conn: Connection, job_id: int, now: dt.datetime, reason: str = "cancelled by operator") -> bool:
    """An operator cancels a live job. A running handler's later outcome then finds the job
    no longer executing and changes nothing."""
    return conn.execute(
        text(
            f"""UPDATE jobs SET state = 'cancelled', finalized_at = :now, leased_until = NULL,
                   errors = errors || jsonb_build_array(jsonb_build_object(
                       'attempt', attempt, 'at', CAST(:now_text AS text), 'error', CAST(:reason AS text)))
               WHERE id = :id AND {_LIVE_SQL}"""
        ),
        {"id": job_id, "now": now, "now_text": now.isoformat(), "reason": reason},
    ).rowcount == 1


def count_by_state(conn: Connection) -> dict[str, int]:
    """Number of jobs per state."""
    rows = conn.execute(text("SELECT state, count(*) AS n FROM jobs GROUP BY state")).all()
    return {r.state: r.n for r in rows}


def _finish(conn: Connection, job_id: int, owner: str, state: str, now: dt.datetime, reason: str | None) -> bool:
    result = conn.execute(
        text(
            """UPDATE jobs SET state = :state, finalized_at = :now, leased_until = NULL,
                 errors = CASE WHEN CAST(:reason AS text) IS NULL THEN errors
                          ELSE errors || jsonb_build_array(jsonb_build_object(
                              'attempt', attempt, 'at', CAST(:now_text AS text), 'error', CAST(:reason AS text))) END
               WHERE id = :id AND state = 'executing' AND attempted_by = :owner"""
        ),
        {"id": job_id, "owner": owner, "state": state, "now": now, "now_text": now.isoformat(), "reason": reason},
    )
    return result.rowcount == 1
