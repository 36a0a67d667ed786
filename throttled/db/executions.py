"""Every SQL statement of ``action_executions``: the enrolled records held in queues.

States: pending → releasing (handed to a portal sender, leased to its daemon) → released
(HubSpot acknowledged; ``released_at`` is the acknowledgement time the rate window counts) —
or back to pending when the lease runs out or its daemon dies (stamped ``unanswered_at`` if a
call on it had started: HubSpot may have completed it, so the window keeps counting it),
failed when HubSpot rejects the callback for good, expired when HubSpot's block ran out first.

Size: over 400 lines on purpose — all SQL of one table family lives in one module (the
house rule), so every statement that reads or moves an execution is in this file.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from throttled.db.nodes import DEAD_OWNER
from throttled.states import ExecutionState


@dataclass(frozen=True, slots=True)
class NewExecution:
    """One execution to store (from a parsed enrollment); ``expires_at`` is when the block
    we ask HubSpot for runs out (aware UTC)."""

    callback_id: str
    portal_id: int
    queue_id: str
    object_type: str | None
    object_id: str | None
    input_fields: dict[str, Any]
    expires_at: dt.datetime
    priority: int = 0
    not_before: dt.datetime | None = None
    arrival_position: int | None = None  # its place in line on arrival (1 = next)


@dataclass(frozen=True, slots=True)
class Stored:
    """An execution already stored, as a webhook HubSpot sent again finds it; a released
    one also with what its completion said (``received_at``, ``sent_at`` of the call that
    completed it, ``arrival_position``), so the answer repeats the same outputs."""

    state: str
    expires_at: dt.datetime
    received_at: dt.datetime | None = None
    sent_at: dt.datetime | None = None
    arrival_position: int | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """An execution handed to a portal sender for completion, leased until ``lease_until``."""

    callback_id: str
    portal_id: int
    queue_id: str
    lease_until: dt.datetime
    received_at: dt.datetime | None = None  # for the completion's outputs
    arrival_position: int | None = None


def insert_executions(conn: Connection, executions: Sequence[NewExecution], now: dt.datetime) -> set[str]:
    """Store executions in the given (arrival) order; a known ``callback_id`` is skipped.

    Returns the callback ids that were new.
    """
    if not executions:
        return set()
    return set(conn.execute(
        text(
            """INSERT INTO action_executions (callback_id, portal_id, queue_id, object_type, object_id,
                                              input_fields, priority, not_before, received_at, expires_at,
                                              arrival_position)
               SELECT e.callback_id, e.portal_id, e.queue_id, e.object_type, e.object_id,
                      e.input_fields, e.priority, e.not_before, :now, e.expires_at, e.arrival_position
               FROM unnest(CAST(:callback_ids AS text[]), CAST(:portal_ids AS bigint[]),
                           CAST(:queue_ids AS text[]), CAST(:object_types AS text[]),
                           CAST(:object_ids AS text[]), CAST(:inputs AS jsonb[]),
                           CAST(:priorities AS smallint[]), CAST(:not_befores AS timestamptz[]),
                           CAST(:expires AS timestamptz[]), CAST(:positions AS integer[]))
                    WITH ORDINALITY AS e(callback_id, portal_id, queue_id, object_type, object_id,
                                         input_fields, priority, not_before, expires_at, arrival_position, ord)
               ORDER BY e.ord  -- seq follows arrival order
               ON CONFLICT (callback_id) DO NOTHING
               RETURNING callback_id"""
        ),
        {
            "callback_ids": [e.callback_id for e in executions],
            "portal_ids": [e.portal_id for e in executions],
            "queue_ids": [e.queue_id for e in executions],
            "object_types": [e.object_type for e in executions],
            "object_ids": [e.object_id for e in executions],
            "inputs": [json.dumps(e.input_fields) for e in executions],
            "priorities": [e.priority for e in executions],
            "not_befores": [e.not_before for e in executions],
            "expires": [e.expires_at for e in executions],
            "positions": [e.arrival_position for e in executions],
            "now": now,
        },
    ).scalars())


def stored(conn: Connection, callback_ids: Sequence[str]) -> dict[str, Stored]:
    """State, block end and outputs' facts of those of ``callback_ids`` that are stored."""
    if not callback_ids:
        return {}
    rows = conn.execute(text("""SELECT callback_id, state, expires_at, received_at, sent_at, arrival_position
                               FROM action_executions WHERE callback_id = ANY(:ids)"""),
                        {"ids": list(callback_ids)}).all()
    return {r.callback_id: Stored(r.state, r.expires_at, r.received_at, r.sent_at, r.arrival_position) for r in rows}


def blocks_ending_after(conn: Connection, callback_ids: Sequence[str], after: dt.datetime
                        ) -> list[tuple[str, dt.timedelta, dt.timedelta]]:
    """``(callback_id, block asked, block left at after)`` of those of ``callback_ids``
    whose block ends after ``after``."""
    rows = conn.execute(
        text("""SELECT callback_id, expires_at - received_at, expires_at - :after FROM action_executions
                WHERE callback_id = ANY(:ids) AND expires_at > :after ORDER BY callback_id"""),
        {"ids": list(callback_ids), "after": after},
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def pending_by_priority(conn: Connection, queue_id: str) -> dict[int, int]:
    """``{priority: count}`` of the queue's pending executions — what a new one waits behind.

    Counts expired-but-not-yet-swept ones too (an index-only scan of the pending index; the
    cleaner sweeps them within minutes), which can only lengthen a forecast.
    """
    return pending_by_priority_of(conn, [queue_id]).get(queue_id, {})


def pending_by_priority_of(conn: Connection, queue_ids: Sequence[str]) -> dict[str, dict[int, int]]:
    """:func:`pending_by_priority` of many queues in one statement (queues with none left out)."""
    rows = conn.execute(
        text("""SELECT queue_id, priority, count(*) FROM action_executions
                WHERE queue_id = ANY(:queue_ids) AND state = 'pending' GROUP BY queue_id, priority"""),
        {"queue_ids": list(queue_ids)},
    ).all()
    found: dict[str, dict[int, int]] = {}
    for queue_id, priority, count in rows:
        found.setdefault(queue_id, {})[int(priority)] = int(count)
    return found


def pending_blocks(conn: Connection, queue_id: str, limit: int) -> list[dt.datetime]:
    """``expires_at`` of the queue's pending executions in release order (priority, then
    arrival), at most ``limit`` — to tell which will expire before their forecast release."""
    return list(conn.execute(
        text("""SELECT expires_at FROM action_executions WHERE queue_id = :queue_id AND state = 'pending'
                ORDER BY priority DESC, seq LIMIT :limit"""),
        {"queue_id": queue_id, "limit": limit},
    ).scalars())


#: SQL: a 'releasing' execution whose lease ran out, or whose daemon is known dead.
LAPSED = "(lease_until < :now OR (leased_by IS NOT NULL AND " + DEAD_OWNER.format(column="leased_by") + "))"
#: SQL: when HubSpot may have completed a release that goes back in line unanswered: if a call
#: on it started (sent_at), as late as that call could end (``:call_s`` seconds, the HubSpot
#: timeout), and not after its lease; never sent in this lease: not at all. The rate window
#: counts it there (an earlier such time is kept if later).
_UNANSWERED = ("greatest(unanswered_at, CASE WHEN sent_at IS NOT NULL THEN least(lease_until, "
               "sent_at + make_interval(secs => :call_s)) END)")


def requeue_lapsed_releases(conn: Connection, queue_id: str, now: dt.datetime, call_s: float) -> int:
    """Executions stuck in 'releasing' — their lease lapsed, or the daemon holding them died
    (``nodes``) — go back to pending, keeping their place in line. Those a call had started
    on may have been completed by HubSpot: the rate window counts them as unanswered
    (:data:`_UNANSWERED`); those never put on the wire go back as they were."""
    return conn.execute(
        text(
            f"""UPDATE action_executions SET state = 'pending', unanswered_at = {_UNANSWERED},
                                            lease_until = NULL, leased_by = NULL, sent_at = NULL
               WHERE queue_id = :queue_id AND state = 'releasing' AND {LAPSED}"""
        ),
        {"queue_id": queue_id, "now": now, "call_s": call_s},
    ).rowcount


def requeue_releases(conn: Connection, callback_ids: Sequence[str], call_s: float) -> int:
    """Put releases handed out but not settled back in line at once (shutdown): one a call had
    started on counts as unanswered (HubSpot may have completed it), the rest go back as
    they were."""
    return conn.execute(
        text(
            f"""UPDATE action_executions SET state = 'pending', unanswered_at = {_UNANSWERED},
                                            lease_until = NULL, leased_by = NULL, sent_at = NULL
               WHERE callback_id = ANY(:ids) AND state = 'releasing'"""
        ),
        {"ids": list(callback_ids), "call_s": call_s},
    ).rowcount


def requeue_unsent(conn: Connection, callback_ids: Sequence[str]) -> int:
    """Put releases back in line that HubSpot did not complete: never sent (a portal already
    held), or refused as a whole (the answer says nothing was done)."""
    return conn.execute(
        text(
            """UPDATE action_executions SET state = 'pending', lease_until = NULL, leased_by = NULL, sent_at = NULL
               WHERE callback_id = ANY(:ids) AND state = 'releasing'"""
        ),
        {"ids": list(callback_ids)},
    ).rowcount


def requeue_deferred(conn: Connection, portal_id: int, now: dt.datetime) -> int:
    """A portal became usable again (re-installed): its releases that failed to send go
    back in line now instead of waiting out their lease (counted in the window at ``now``:
    a failed call may still have completed them)."""
    return conn.execute(
        text(
            """UPDATE action_executions SET state = 'pending', lease_until = NULL, unanswered_at = :now,
                                            leased_by = NULL, sent_at = NULL
               WHERE portal_id = :portal_id AND state = 'releasing' AND last_failure_reason IS NOT NULL"""
        ),
        {"portal_id": portal_id, "now": now},
    ).rowcount


def requeue_deferred_in_queue(conn: Connection, queue_ids: Sequence[str], now: dt.datetime) -> int:
    """An operator resumed or drained the queues (a queue and its partitions): their releases
    that failed to send go back in line now instead of waiting out their lease (counted in
    the window at ``now``)."""
    return conn.execute(
        text(
            """UPDATE action_executions SET state = 'pending', lease_until = NULL, unanswered_at = :now,
                                            leased_by = NULL, sent_at = NULL
               WHERE queue_id = ANY(:queue_ids) AND state = 'releasing' AND last_failure_reason IS NOT NULL"""
        ),
        {"queue_ids": list(queue_ids), "now": now},
    ).rowcount


def start_sending(
    conn: Connection, leases: Mapping[str, dt.datetime], now: dt.datetime, renew_before: dt.datetime,
    lease_until: dt.datetime,
) -> dict[str, dt.datetime]:
    """A call is about to start on these releases (``leases``: callback id -> the lease its
    sender holds): stamp ``sent_at`` (so a crash from here on counts them as maybe
    completed) and extend to ``lease_until`` the leases ending before ``renew_before``.
    Returns ``{callback id: lease}`` of those still held; any other was put back in line (its
    lease lapsed, or its daemon was taken for dead) and perhaps leased to another sender, so
    it must not be sent."""
    if not leases:
        return {}
    ids = list(leases)
    rows = conn.execute(
        text(
            """UPDATE action_executions e SET sent_at = :now,
                   lease_until = CASE WHEN e.lease_until < :renew_before THEN :lease_until ELSE e.lease_until END
               FROM unnest(CAST(:ids AS text[]), CAST(:held AS timestamptz[])) AS h(callback_id, lease_until)
               WHERE e.callback_id = ANY(:ids)  -- the primary key's index, not every send in flight
                 AND e.callback_id = h.callback_id AND e.state = 'releasing' AND e.lease_until = h.lease_until
               RETURNING e.callback_id, e.lease_until"""
        ),
        {"ids": ids, "held": [leases[i] for i in ids], "now": now, "renew_before": renew_before,
         "lease_until": lease_until},
    ).all()
    return {r.callback_id: r.lease_until for r in rows}


def renew_leases(conn: Connection, leases: Mapping[str, dt.datetime], lease_until: dt.datetime) -> set[str]:
    """Extend to ``lease_until`` the leases we still hold: ``leases`` maps callback id -> the
    lease its sender was given. Returns the ids renewed; any other was put back in line (its
    lease lapsed) and perhaps leased to another sender, so it must not be sent."""
    if not leases:
        return set()
    ids = list(leases)
    return set(
        conn.execute(
            text(
                """UPDATE action_executions e SET lease_until = :lease_until
                   FROM unnest(CAST(:ids AS text[]), CAST(:held AS timestamptz[])) AS h(callback_id, lease_until)
                   WHERE e.callback_id = ANY(:ids) AND e.callback_id = h.callback_id AND e.state = 'releasing'
                     AND e.lease_until = h.lease_until
                   RETURNING e.callback_id"""
            ),
            {"ids": ids, "held": [leases[i] for i in ids], "lease_until": lease_until},
        ).scalars()
    )


def window_state_of(conn: Connection, wanted: Mapping[str, tuple[dt.datetime, int]]
                    ) -> dict[str, tuple[list[dt.datetime], int]]:
    """What each queue's window holds, many queues in one statement: ``wanted`` maps queue id
    → ``(since, limit)``; returns queue id → ``(recent, in_flight)``: the times after
    ``since`` that the rate window counts, newest first, at most ``limit`` — acknowledgements,
    and the ``unanswered_at`` of sends whose answer never came (HubSpot may have completed
    those; a later "already completed" is counted again, on the safe side) — and the
    executions now 'releasing'. One statement, so one snapshot: a release that
    HubSpot acknowledges meanwhile is counted once — either in flight or released — where two
    statements could count it twice and hold the queue for a whole period."""
    if not wanted:
        return {}
    ids = list(wanted)
    rows = conn.execute(
        text(
            """SELECT q.queue_id, r.t,
                      (SELECT count(*) FROM action_executions f
                       WHERE f.queue_id = q.queue_id AND f.state = 'releasing') AS in_flight
               FROM unnest(CAST(:ids AS text[]), CAST(:sinces AS timestamptz[]), CAST(:limits AS integer[]))
                    AS q(queue_id, since, lim)
               LEFT JOIN LATERAL (
                   (SELECT released_at AS t FROM action_executions
                    WHERE queue_id = q.queue_id AND state = 'released' AND released_at > q.since
                    ORDER BY released_at DESC LIMIT q.lim)
                   UNION ALL
                   (SELECT unanswered_at FROM action_executions
                    WHERE queue_id = q.queue_id AND unanswered_at IS NOT NULL AND state <> 'released'
                      AND unanswered_at > q.since
                    ORDER BY unanswered_at DESC LIMIT q.lim)) AS r ON true"""
        ),
        {"ids": ids, "sinces": [wanted[i][0] for i in ids], "limits": [wanted[i][1] for i in ids]},
    ).all()
    found: dict[str, tuple[list[dt.datetime], int]] = {}
    for queue_id, t, in_flight in rows:
        times, _ = found.setdefault(queue_id, ([], in_flight))
        if t is not None:
            times.append(t)
    return {q: (sorted(times, reverse=True)[:wanted[q][1]], n) for q, (times, n) in found.items()}


_ELIGIBLE = "state = 'pending' AND expires_at > :now AND (not_before IS NULL OR not_before <= :now)"


def take_pending(
    conn: Connection, queue_id: str, limit: int, now: dt.datetime, lease_until: dt.datetime, owner: str | None = None,
) -> list[Lease]:
    """Mark up to ``limit`` eligible pending executions 'releasing', leased to the daemon
    ``owner`` until ``lease_until``: higher priority first, arrival order within a priority;
    expired and not-yet-due ones are skipped."""
    return take_pending_of(conn, {queue_id: limit}, now, lease_until, owner).get(queue_id, [])


def take_pending_of(
    conn: Connection, limits: Mapping[str, int], now: dt.datetime, lease_until: dt.datetime, owner: str | None = None,
) -> dict[str, list[Lease]]:
    """:func:`take_pending` for many queues in one statement: ``limits`` maps queue id → the
    most to take; returns each queue's leases in release order (queues given none are left out)."""
    wanted = {q: n for q, n in limits.items() if n > 0}
    if not wanted:
        return {}
    rows = conn.execute(
        text(
            f"""WITH next AS (
                   SELECT e.callback_id
                   FROM unnest(CAST(:ids AS text[]), CAST(:limits AS integer[])) AS q(queue_id, lim)
                   CROSS JOIN LATERAL (
                       SELECT callback_id FROM action_executions
                       WHERE queue_id = q.queue_id AND {_ELIGIBLE}
                       ORDER BY priority DESC, seq LIMIT q.lim FOR UPDATE SKIP LOCKED) AS e)
               UPDATE action_executions e SET state = 'releasing', lease_until = :lease_until,
                                              leased_by = :owner, sent_at = NULL
               FROM next WHERE e.callback_id = next.callback_id
               RETURNING e.callback_id, e.portal_id, e.queue_id, e.priority, e.seq, e.received_at,
                         e.arrival_position"""
        ),
        {"ids": list(wanted), "limits": list(wanted.values()), "now": now, "lease_until": lease_until, "owner": owner},
    ).all()
    taken: dict[str, list[Lease]] = {}
    for r in sorted(rows, key=lambda r: (-r.priority, r.seq)):
        taken.setdefault(r.queue_id, []).append(
            Lease(r.callback_id, r.portal_id, r.queue_id, lease_until, r.received_at, r.arrival_position))
    return taken


def pending_outlook(conn: Connection, queue_id: str, now: dt.datetime) -> tuple[bool, dt.datetime | None]:
    """``(eligible_now, next_due)``: whether a pending execution may be released now, and
    otherwise when the earliest "release no earlier than" one becomes due (``None`` if no
    pending execution is waiting at all)."""
    return pending_outlooks(conn, [queue_id], now)[queue_id]


def pending_outlooks(conn: Connection, queue_ids: Sequence[str], now: dt.datetime
                     ) -> dict[str, tuple[bool, dt.datetime | None]]:
    """:func:`pending_outlook` of every queue in ``queue_ids``, in one statement."""
    if not queue_ids:
        return {}
    rows = conn.execute(
        text(
            f"""SELECT q.queue_id,
                       EXISTS (SELECT 1 FROM action_executions WHERE queue_id = q.queue_id AND {_ELIGIBLE}),
                       (SELECT min(not_before) FROM action_executions
                        WHERE queue_id = q.queue_id AND state = 'pending' AND expires_at > :now
                          AND not_before > :now)
                FROM unnest(CAST(:ids AS text[])) AS q(queue_id)"""
        ),
        {"ids": list(queue_ids), "now": now},
    ).all()
    return {queue_id: ((True, now) if eligible else (False, due)) for queue_id, eligible, due in rows}


def mark_released(conn: Connection, callback_ids: Sequence[str], acked_at: dt.datetime) -> int:
    """HubSpot acknowledged these completions at ``acked_at``."""
    return mark_released_at(conn, [(callback_id, acked_at) for callback_id in callback_ids])


def mark_released_at(conn: Connection, acks: Sequence[tuple[str, dt.datetime]]) -> int:
    """HubSpot acknowledged these completions: ``acks`` is ``(callback id, acknowledged at)``
    (several batches written together, each with its own time). Returns the rows changed."""
    if not acks:
        return 0
    ids = [callback_id for callback_id, _ in acks]
    return conn.execute(
        text(
            """UPDATE action_executions e SET state = 'released', released_at = a.at, finished_at = a.at,
                                              lease_until = NULL, attempts = e.attempts + 1
               FROM unnest(CAST(:ids AS text[]), CAST(:ats AS timestamptz[])) AS a(callback_id, at)
               WHERE e.callback_id = ANY(:ids) AND e.callback_id = a.callback_id
                 AND e.state IN ('releasing', 'pending')"""
        ),
        {"ids": ids, "ats": [at for _, at in acks]},
    ).rowcount


def mark_finished(conn: Connection, callback_ids: Sequence[str], state: str, reason: str, now: dt.datetime) -> int:
    """End these executions at ``now`` without a release: ``failed`` (HubSpot rejected the
    callback for good) or ``expired`` (HubSpot no longer knows it / its block ran out)."""
    if state not in (ExecutionState.FAILED, ExecutionState.EXPIRED):
        raise ValueError(f"not a final state without release: {state!r}")
    return conn.execute(
        text(
            """UPDATE action_executions SET state = :state, lease_until = NULL, finished_at = :now,
                                            attempts = attempts + 1, last_failure_reason = :reason
               WHERE callback_id = ANY(:ids) AND state = 'releasing'"""
        ),
        {"ids": list(callback_ids), "state": state, "reason": reason[:500], "now": now},
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
            """UPDATE action_executions SET state = 'expired', finished_at = :now
               WHERE callback_id IN (SELECT callback_id FROM action_executions
                                     WHERE state = 'pending' AND expires_at <= :now
                                     LIMIT :limit FOR UPDATE SKIP LOCKED)"""
        ),
        {"now": now, "limit": limit},
    ).rowcount


def cancel_pending(conn: Connection, queue_ids: Sequence[str], reason: str, now: dt.datetime) -> int:
    """An operator purges the queues' backlog (a queue and its partitions) at ``now``: their
    pending executions are cancelled and never completed (HubSpot lets each enrollment go on
    when its block expires)."""
    return conn.execute(
        text(
            """UPDATE action_executions SET state = 'cancelled', last_failure_reason = :reason, finished_at = :now
               WHERE queue_id = ANY(:queue_ids) AND state = 'pending'"""
        ),
        {"queue_ids": list(queue_ids), "reason": reason[:500], "now": now},
    ).rowcount


#: SQL: seconds in a queue's period, the step's or the override's, whichever is longer
#: (``q`` the queue, ``c`` its override, left-joined).
_LONGEST_PERIOD_S = """greatest(
    q.time_period * CASE q.time_unit WHEN 'seconds' THEN 1 WHEN 'minutes' THEN 60 WHEN 'hours' THEN 3600
                                     WHEN 'days' THEN 86400 ELSE 604800 END,
    coalesce(c.time_period * CASE c.time_unit WHEN 'seconds' THEN 1 WHEN 'minutes' THEN 60 WHEN 'hours' THEN 3600
                                              WHEN 'days' THEN 86400 ELSE 604800 END, 0))"""


def prune_finished(conn: Connection, now: dt.datetime, retention: dt.timedelta, limit: int = 1000) -> int:
    """Delete up to ``limit`` finished executions (released, failed, expired, cancelled) that
    finished and arrived more than ``retention`` before ``now``, and whose release no longer
    counts in any window of its queue (a rate of 1 per 8 weeks keeps its releases 8 weeks).
    Returns how many.

    The retention keeps what idempotency needs: a webhook HubSpot sends again inside its
    retry horizon (three days) still finds its execution and gets the right answer.
    """
    return conn.execute(
        text(
            f"""DELETE FROM action_executions WHERE callback_id IN (
                   SELECT e.callback_id FROM action_executions e
                   JOIN queues q ON q.queue_id = e.queue_id
                   LEFT JOIN throttle_configs c ON c.portal_id = q.portal_id AND c.action_id = q.action_id
                   WHERE e.state IN ('released', 'failed', 'expired', 'cancelled')
                     AND e.finished_at < :before AND e.received_at < :before
                     AND coalesce(greatest(e.released_at, e.unanswered_at), e.finished_at)
                         < :now - make_interval(secs => {_LONGEST_PERIOD_S})
                   LIMIT :limit FOR UPDATE OF e SKIP LOCKED)"""
        ),
        {"before": now - retention, "now": now, "limit": limit},
    ).rowcount


def queue_ids_of(conn: Connection, callback_ids: Sequence[str]) -> list[str]:
    """The distinct queues these executions belong to."""
    return list(conn.execute(
        text("SELECT DISTINCT queue_id FROM action_executions WHERE callback_id = ANY(:ids) ORDER BY queue_id"),
        {"ids": list(callback_ids)},
    ).scalars())


def count_active(conn: Connection) -> dict[str, int]:
    """Pending and releasing executions across all queues — from their partial indexes, so
    the cost follows the backlog, never the finished rows."""
    pending, releasing = conn.execute(text(
        """SELECT (SELECT count(*) FROM action_executions WHERE state = 'pending'),
                  (SELECT count(*) FROM action_executions WHERE state = 'releasing')""")).one()
    return {ExecutionState.PENDING: pending, ExecutionState.RELEASING: releasing}


def active_counts(conn: Connection, queue_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{queue_id: {"pending": n, "releasing": n}}`` of the given queues, from the partial
    indexes (the finished rows are never read)."""
    counts: dict[str, dict[str, int]] = {}
    for state in (ExecutionState.PENDING, ExecutionState.RELEASING):
        rows = conn.execute(text("""SELECT queue_id, count(*) AS n FROM action_executions
                                    WHERE state = :state AND queue_id = ANY(:ids) GROUP BY queue_id"""),
                            {"state": state, "ids": list(queue_ids)})
        for r in rows:
            counts.setdefault(r.queue_id, {})[state] = r.n
    return counts


def execution_counts(conn: Connection, queue_ids: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """``{queue_id: {state: count}}`` for the given queues (all when ``None``)."""
    sql = "SELECT queue_id, state, count(*) AS n FROM action_executions"
    params: dict[str, Any] = {}
    if queue_ids is not None:
        sql += " WHERE queue_id = ANY(:ids)"
        params["ids"] = list(queue_ids)
    counts: dict[str, dict[str, int]] = {}
    for r in conn.execute(text(sql + " GROUP BY queue_id, state"), params):
        counts.setdefault(r.queue_id, {})[r.state] = r.n
    return counts


def releases_per_minute(
    conn: Connection, queue_ids: Sequence[str], since: dt.datetime, minutes: int
) -> dict[str, list[int]]:
    """Acknowledged releases per minute for each queue over ``minutes`` minutes from
    ``since`` (``released_at`` in ``[since, since + minutes)``): ``{queue_id: [count, …]}``,
    oldest minute first, one entry per minute, zeros included. For the status page."""
    rows = conn.execute(
        text(
            """SELECT queue_id,
                      CAST(floor(extract(epoch FROM released_at - CAST(:since AS timestamptz)) / 60) AS integer) AS minute,
                      count(*) AS n
               FROM action_executions
               WHERE queue_id = ANY(:ids) AND state = 'released'
                 AND released_at >= :since AND released_at < :until
               GROUP BY 1, 2"""
        ),
        {"ids": list(queue_ids), "since": since, "until": since + dt.timedelta(minutes=minutes)},
    ).all()
    history = {queue_id: [0] * minutes for queue_id in queue_ids}
    for r in rows:
        history[r.queue_id][r.minute] = r.n
    return history


def latest_pending_expiry(conn: Connection, queue_id: str) -> dt.datetime | None:
    """The latest ``expires_at`` of the queue's pending executions — when the last block
    HubSpot holds for it ends (``None``: nothing pending). For the customer page's forecast."""
    latest: dt.datetime | None = conn.execute(
        text("SELECT max(expires_at) FROM action_executions WHERE queue_id = :queue_id AND state = 'pending'"),
        {"queue_id": queue_id},
    ).scalar_one()
    return latest
