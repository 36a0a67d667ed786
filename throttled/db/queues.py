"""Every SQL statement of ``queues`` and ``throttle_configs`` (operator overrides).

Size: a little over 300 lines; the two tables are one family (an override applies to the
queues of its action, and the worker reads both in one statement).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from throttled.db.executions import LAPSED
from throttled.states import QueueState

#: SQL prefix: lock the queue rows ``{where}`` selects in queue-id order before a multi-row
#: UPDATE of them (``… FROM ordered WHERE queues.queue_id = ordered.queue_id``). The worker
#: locks a batch of queues in that order, so every statement locking several queues must:
#: an UPDATE locks in scan order, and two orders deadlock (bench/visits found one).
_ORDERED = "WITH ordered AS (SELECT queue_id FROM queues WHERE {where} ORDER BY queue_id FOR UPDATE) "

_QUEUE_COLUMNS = """queue_id, portal_id, action_id, max_throughput, time_period, time_unit, mode,
    release_days, release_start_minute, release_end_minute, time_zone, parent_queue_id, partition_key,
    state, on_hold_until,
    consecutive_failures, holds, last_failure_reason, refused, refused_at,
    expiring, expiring_complete, first_block_end, expiring_checked_at"""


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """What ingest writes for a queue: the step's settings (last webhook wins).

    ``release_days`` is a weekday bitmask (bit 0 = Monday); window fields are ``None``
    when the step has no business hours.
    """

    queue_id: str
    portal_id: int
    action_id: int | None
    max_throughput: int
    time_period: int
    time_unit: str
    mode: str = "burst"
    release_days: int | None = None
    release_start_minute: int | None = None
    release_end_minute: int | None = None
    time_zone: str | None = None
    parent_queue_id: str | None = None  # a partition's step queue (None: not a partition)
    partition_key: str | None = None    # a partition's key value, as sent


@dataclass(frozen=True, slots=True)
class QueueRow(QueueSettings):
    """A queue as stored, with its state."""

    state: str = QueueState.ACTIVE
    on_hold_until: dt.datetime | None = None
    consecutive_failures: int = 0
    holds: int = 0
    last_failure_reason: str | None = None
    refused: int = 0  # enrollments refused: no block could cover their forecast release
    refused_at: dt.datetime | None = None
    expiring: int | None = None  # the last count of held records that will expire before their turn
    expiring_complete: bool | None = None
    first_block_end: dt.datetime | None = None
    expiring_checked_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ConfigRow:
    """An operator override for (portal, action): ``None`` fields keep the step's value."""

    portal_id: int
    action_id: int
    max_throughput: int | None
    time_period: int | None
    time_unit: str | None
    mode: str | None
    updated_at: dt.datetime


_SETTINGS = ("action_id", "max_throughput", "time_period", "time_unit", "mode",
             "release_days", "release_start_minute", "release_end_minute", "time_zone", "parent_queue_id",
             "partition_key")
_SETTING_TYPES = ("bigint", "integer", "integer", "text", "text", "smallint", "smallint", "smallint", "text", "text",
                  "text")


def upsert_queues(conn: Connection, queues: Sequence[QueueSettings], now: dt.datetime) -> None:
    """Create each queue or update its settings; always row-locks it for this transaction.

    One statement for the whole batch, rows taken in queue-id order, so concurrent batches
    lock in one order (no deadlock). The lock is what serializes ingest with the worker's
    "queue empty → finish" step (design invariant 3). The ``WHERE`` skips writing a row
    whose settings did not change; a conflicting row is locked either way (PostgreSQL
    ``ON CONFLICT DO UPDATE`` semantics).
    """
    if not queues:
        return
    ordered = sorted(queues, key=lambda q: q.queue_id)
    columns = ", ".join(_SETTINGS)
    arrays = ", ".join(f"CAST(:{c} AS {t}[])" for c, t in zip(_SETTINGS, _SETTING_TYPES, strict=True))
    conn.execute(
        text(
            f"""INSERT INTO queues AS q (queue_id, portal_id, {columns}, created_at, updated_at)
                SELECT u.queue_id, u.portal_id, {", ".join("u." + c for c in _SETTINGS)}, :now, :now
                FROM unnest(CAST(:queue_id AS text[]), CAST(:portal_id AS bigint[]), {arrays})
                     AS u(queue_id, portal_id, {columns})
                ORDER BY u.queue_id
                ON CONFLICT (queue_id) DO UPDATE
                SET {", ".join(f"{c} = excluded.{c}" for c in _SETTINGS)}, updated_at = excluded.updated_at
                WHERE ({", ".join("q." + c for c in _SETTINGS)})
                      IS DISTINCT FROM ({", ".join("excluded." + c for c in _SETTINGS)})"""
        ),
        {
            "queue_id": [q.queue_id for q in ordered], "portal_id": [q.portal_id for q in ordered], "now": now,
            **{c: [getattr(q, c) for q in ordered] for c in _SETTINGS},
        },
    )


@dataclass(frozen=True, slots=True)
class LockedQueue:
    """What the worker reads under the queue's row lock, in one round trip.

    ``override_stamp``: ``updated_at`` of the operator override (``None`` without one);
    ``portal``: ``(status, held_until)``, ``None`` if the portal never installed;
    ``releasing``: executions in flight; ``lapsed``: those of them whose lease ran out or
    whose daemon died.
    """

    queue: QueueRow
    override_stamp: dt.datetime | None
    portal: tuple[str, dt.datetime | None] | None
    releasing: int
    lapsed: int


def lock_queue(conn: Connection, queue_id: str, now: dt.datetime) -> LockedQueue | None:
    """:func:`lock_queues` for one queue (``None`` if it is unknown)."""
    return lock_queues(conn, [queue_id], now).get(queue_id)


def lock_queues(conn: Connection, queue_ids: Sequence[str], now: dt.datetime) -> dict[str, LockedQueue]:
    """Row-lock the queues for this transaction — in queue-id order, as ingest does, so
    the two never deadlock — and return each with what the worker needs besides (unknown
    ones are left out).

    The worker's hot path: the override stamp, the portal's state and the in-flight counts
    come from the same statement (subqueries on ``throttle_configs``, ``portals`` and the
    ``releasing`` index of ``action_executions``) instead of four more round trips per queue.
    """
    rows = conn.execute(
        text(
            f"""SELECT {_QUEUE_COLUMNS},
                       (SELECT c.updated_at FROM throttle_configs c
                        WHERE c.portal_id = queues.portal_id AND c.action_id = queues.action_id),
                       (SELECT p.status FROM portals p WHERE p.portal_id = queues.portal_id),
                       (SELECT p.held_until FROM portals p WHERE p.portal_id = queues.portal_id),
                       (SELECT count(*) FROM action_executions e
                        WHERE e.queue_id = queues.queue_id AND e.state = 'releasing'),
                       (SELECT count(*) FROM action_executions e
                        WHERE e.queue_id = queues.queue_id AND e.state = 'releasing' AND {LAPSED})
                FROM queues WHERE queue_id = ANY(:queue_ids) ORDER BY queue_id FOR UPDATE"""
        ),
        {"queue_ids": list(queue_ids), "now": now},
    ).all()
    locked = {}
    for row in rows:
        *queue, stamp, status, limited_until, releasing, lapsed = row
        q = QueueRow(*queue)
        locked[q.queue_id] = LockedQueue(q, stamp, (status, limited_until) if status else None, releasing, lapsed)
    return locked


def note_refused(conn: Connection, refused: dict[str, int], now: dt.datetime) -> None:
    """Count ``{queue_id: n}`` enrollments refused at ``now`` (their queues are locked by
    this transaction's :func:`upsert_queues`)."""
    if refused:
        conn.execute(
            text("""UPDATE queues q SET refused = q.refused + r.n, refused_at = :now
                    FROM unnest(CAST(:ids AS text[]), CAST(:ns AS bigint[])) AS r(queue_id, n)
                    WHERE q.queue_id = r.queue_id"""),
            {"ids": list(refused), "ns": list(refused.values()), "now": now},
        )


def save_expiring(conn: Connection, queue_id: str, count: int, complete: bool, first_block_end: dt.datetime | None,
                  now: dt.datetime) -> None:
    """Keep the count of the queue's held records that will expire before their turn."""
    conn.execute(
        text("""UPDATE queues SET expiring = :count, expiring_complete = :complete, first_block_end = :first_end,
                                  expiring_checked_at = :now WHERE queue_id = :queue_id"""),
        {"queue_id": queue_id, "count": count, "complete": complete, "first_end": first_block_end, "now": now},
    )


def queues_to_count_expiring(conn: Connection, limit: int) -> list[str]:
    """Up to ``limit`` queues with a backlog, the longest unchecked first; queues whose
    backlog is gone lose their count on the way."""
    where = """queues.expiring IS NOT NULL AND NOT EXISTS (
                   SELECT 1 FROM action_executions e WHERE e.queue_id = queues.queue_id AND e.state = 'pending')"""
    conn.execute(text(_ORDERED.format(where=where) + """UPDATE queues SET expiring = NULL, expiring_complete = NULL,
                                                           first_block_end = NULL
                                                       FROM ordered WHERE queues.queue_id = ordered.queue_id"""))
    return list(conn.execute(
        text("""SELECT q.queue_id FROM queues q
                WHERE EXISTS (SELECT 1 FROM action_executions e WHERE e.queue_id = q.queue_id AND e.state = 'pending')
                ORDER BY q.expiring_checked_at NULLS FIRST, q.queue_id LIMIT :limit"""),
        {"limit": limit},
    ).scalars())


def get_queues(conn: Connection, queue_ids: Sequence[str]) -> dict[str, QueueRow]:
    """Several queues by id, without locking (unknown ones left out)."""
    rows = conn.execute(text(f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE queue_id = ANY(:ids)"),
                        {"ids": list(queue_ids)}).all()
    return {q.queue_id: q for q in (QueueRow(*r) for r in rows)}


def get_queue(conn: Connection, queue_id: str) -> QueueRow | None:
    """One queue, without locking."""
    row = conn.execute(text(f"SELECT {_QUEUE_COLUMNS} FROM queues WHERE queue_id = :queue_id"), {"queue_id": queue_id}).first()
    return QueueRow(*row) if row else None


def list_queues(conn: Connection, portal_id: int | None = None) -> list[QueueRow]:
    """Every queue (of one portal when given), by id."""
    rows = conn.execute(
        text(f"""SELECT {_QUEUE_COLUMNS} FROM queues
                 WHERE CAST(:portal_id AS bigint) IS NULL OR portal_id = :portal_id ORDER BY queue_id"""),
        {"portal_id": portal_id},
    ).all()
    return [QueueRow(*r) for r in rows]


def family_ids(conn: Connection, queue_id: str) -> list[str]:
    """``queue_id`` and its partitions' queue ids (empty when the queue is unknown), by id."""
    return list(conn.execute(
        text("SELECT queue_id FROM queues WHERE queue_id = :queue_id OR parent_queue_id = :queue_id ORDER BY queue_id"),
        {"queue_id": queue_id},
    ).scalars())


def set_family_settings(conn: Connection, queue_id: str, settings: Mapping[str, Any], now: dt.datetime) -> list[str]:
    """Give ``queue_id`` and its partitions new settings (``settings``: the columns
    ``max_throughput`` … ``time_zone``). Returns the queue ids changed."""
    columns = ("max_throughput", "time_period", "time_unit", "mode", "release_days", "release_start_minute",
               "release_end_minute", "time_zone")
    return list(conn.execute(
        text(_ORDERED.format(where="queue_id = :queue_id OR parent_queue_id = :queue_id")
             + f"""UPDATE queues SET {", ".join(f"{c} = :{c}" for c in columns)}, updated_at = :now
                   FROM ordered WHERE queues.queue_id = ordered.queue_id RETURNING queues.queue_id"""),
        {"queue_id": queue_id, "now": now, **{c: settings[c] for c in columns}},
    ).scalars())


#: SQL: what an operator's pause, drain or resume writes (``active`` also clears a hold and
#: the failure count).
_SET_STATE = """UPDATE queues SET state = :state, updated_at = :now,
                   on_hold_until = CASE WHEN :state = 'active' THEN NULL ELSE on_hold_until END,
                   consecutive_failures = CASE WHEN :state = 'active' THEN 0 ELSE consecutive_failures END,
                   holds = CASE WHEN :state = 'active' THEN 0 ELSE holds END"""


def _operator_state(state: str) -> None:
    if state not in (QueueState.ACTIVE, QueueState.PAUSED, QueueState.DRAINING):
        raise ValueError(f"operators set active, paused or draining, not {state!r}")


def set_family_state(conn: Connection, queue_id: str, state: str, now: dt.datetime) -> list[str]:
    """:func:`set_state` for ``queue_id`` and its partitions. Returns the queue ids changed
    (empty: the queue is unknown)."""
    _operator_state(state)
    return list(conn.execute(
        text(_ORDERED.format(where="queue_id = :queue_id OR parent_queue_id = :queue_id") + _SET_STATE
             + " FROM ordered WHERE queues.queue_id = ordered.queue_id RETURNING queues.queue_id"),
        {"queue_id": queue_id, "state": state, "now": now},
    ).scalars())


def set_state(conn: Connection, queue_id: str, state: str, now: dt.datetime) -> bool:
    """Pause (``paused``), drain (``draining``) or resume (``active``: also clears a hold
    and the failure count). Returns whether the queue exists."""
    _operator_state(state)
    return conn.execute(text(_SET_STATE + " WHERE queue_id = :queue_id"),
                        {"queue_id": queue_id, "state": state, "now": now}).rowcount == 1


def record_failure(
    conn: Connection, queue_ids: Sequence[str], reason: str, now: dt.datetime,
    *, threshold: int, hold_s: float, max_hold_s: float,
) -> list[str]:
    """Count a HubSpot failure against each queue; a queue reaching ``threshold`` failures in
    a row goes on hold for ``hold_s · 2^holds`` seconds (capped at ``max_hold_s``) and its
    count restarts. Paused queues stay paused. Returns the queues put on hold."""
    rows = conn.execute(
        text(
            _ORDERED.format(where="queue_id = ANY(:ids)")
            + """UPDATE queues SET
                 last_failure_reason = :reason, updated_at = :now,
                 consecutive_failures = CASE WHEN consecutive_failures + 1 >= :threshold THEN 0
                                             ELSE consecutive_failures + 1 END,
                 state = CASE WHEN state <> 'paused' AND consecutive_failures + 1 >= :threshold
                              THEN 'on_hold' ELSE state END,
                 on_hold_until = CASE WHEN state <> 'paused' AND consecutive_failures + 1 >= :threshold
                     THEN CAST(:now AS timestamptz) + make_interval(secs => LEAST(:max_hold_s, :hold_s * power(2, holds)))
                     ELSE on_hold_until END,
                 holds = CASE WHEN state <> 'paused' AND consecutive_failures + 1 >= :threshold
                              THEN holds + 1 ELSE holds END
               FROM ordered WHERE queues.queue_id = ordered.queue_id
               RETURNING queues.queue_id, queues.state, queues.on_hold_until"""
        ),
        {"ids": list(queue_ids), "reason": reason[:500], "now": now, "threshold": threshold,
         "hold_s": hold_s, "max_hold_s": max_hold_s},
    ).all()
    return [r.queue_id for r in rows if r.state == QueueState.ON_HOLD and r.on_hold_until and r.on_hold_until > now]


def record_success(conn: Connection, queue_ids: Sequence[str], now: dt.datetime) -> None:
    """HubSpot accepted releases of these queues: failures and holds reset."""
    conn.execute(
        text(
            _ORDERED.format(where="queue_id = ANY(:ids) AND (consecutive_failures > 0 OR holds > 0 OR state = 'on_hold')")
            + """UPDATE queues SET consecutive_failures = 0, holds = 0, on_hold_until = NULL,
                   state = CASE WHEN state = 'on_hold' THEN 'active' ELSE state END, updated_at = :now
               FROM ordered WHERE queues.queue_id = ordered.queue_id"""
        ),
        {"ids": list(queue_ids), "now": now},
    )


def queues_without_live_job(conn: Connection, job_key_prefix: str, now: dt.datetime) -> list[tuple[str, int, int | None]]:
    """``(queue_id, portal_id, action_id)`` of queues holding unexpired pending or releasing
    executions but no live job keyed ``prefix + queue_id``. By construction there are none
    (invariant 3)."""
    rows = conn.execute(
        text(
            """SELECT q.queue_id, q.portal_id, q.action_id FROM queues q
               WHERE EXISTS (SELECT 1 FROM action_executions e
                             WHERE e.queue_id = q.queue_id AND e.expires_at > :now
                               AND e.state IN ('pending', 'releasing'))
                 AND NOT EXISTS (SELECT 1 FROM jobs j
                                 WHERE j.unique_key = :prefix || q.queue_id
                                   AND j.state IN ('available', 'scheduled', 'executing', 'retryable'))"""
        ),
        {"prefix": job_key_prefix, "now": now},
    ).all()
    return [(r.queue_id, r.portal_id, r.action_id) for r in rows]


# -- operator overrides (throttle_configs) -----------------------------------------------

#: Channel an override change is announced on (payload ``"{portal_id}:{action_id}"``).
CONFIG_CHANNEL = "throttled_config"


def notify_config_change(conn: Connection, portal_id: int, action_id: int) -> None:
    """NOTIFY every daemon's config cache; delivered when the transaction commits."""
    conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                 {"channel": CONFIG_CHANNEL, "payload": f"{portal_id}:{action_id}"})


_CONFIG_COLUMNS = "portal_id, action_id, max_throughput, time_period, time_unit, mode, updated_at"


def get_config(conn: Connection, portal_id: int, action_id: int) -> ConfigRow | None:
    """The override for (portal, action), if any."""
    row = conn.execute(
        text(f"SELECT {_CONFIG_COLUMNS} FROM throttle_configs WHERE portal_id = :p AND action_id = :a"),
        {"p": portal_id, "a": action_id},
    ).first()
    return ConfigRow(*row) if row else None


def configs_of(conn: Connection, portal_ids: Sequence[int]) -> dict[tuple[int, int], ConfigRow]:
    """Every override of these portals, by (portal, action): one statement for a list."""
    rows = conn.execute(text(f"SELECT {_CONFIG_COLUMNS} FROM throttle_configs WHERE portal_id = ANY(:ids)"),
                        {"ids": list(portal_ids)})
    return {(r.portal_id, r.action_id): ConfigRow(*r) for r in rows}


def upsert_config(conn: Connection, config: ConfigRow) -> ConfigRow:
    """Create or replace the override for (portal, action) — unique on that pair."""
    row = conn.execute(
        text(
            f"""INSERT INTO throttle_configs ({_CONFIG_COLUMNS})
                VALUES (:portal_id, :action_id, :max_throughput, :time_period, :time_unit, :mode, :updated_at)
                ON CONFLICT (portal_id, action_id) DO UPDATE SET
                  max_throughput = excluded.max_throughput, time_period = excluded.time_period,
                  time_unit = excluded.time_unit, mode = excluded.mode, updated_at = excluded.updated_at
                RETURNING {_CONFIG_COLUMNS}"""
        ),
        {f: getattr(config, f) for f in ConfigRow.__dataclass_fields__},
    ).one()
    return ConfigRow(*row)


def delete_config(conn: Connection, portal_id: int, action_id: int) -> bool:
    """Remove the override; the steps' own inputs apply again."""
    return conn.execute(
        text("DELETE FROM throttle_configs WHERE portal_id = :p AND action_id = :a"), {"p": portal_id, "a": action_id}
    ).rowcount == 1


def queue_ids_for_action(conn: Connection, portal_id: int, action_id: int) -> list[str]:
    """Queues an override of (portal, action) applies to."""
    return list(conn.execute(
        text("SELECT queue_id FROM queues WHERE portal_id = :p AND action_id = :a ORDER BY queue_id"),
        {"p": portal_id, "a": action_id},
    ).scalars())
