"""Queues as operators see and steer them: backlog, rate in force, state; pause, resume,
drain, purge; releases per minute for the status pages."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.engine import Connection

from throttled.control import Conflict, NotFound, jsonable
from throttled.db import executions as executions_sql
from throttled.db import portals as portals_sql
from throttled.db import queues as queues_sql
from throttled.db.queues import ConfigRow, QueueRow
from throttled.db.time import database_now
from throttled.states import IN_QUEUE, QueueState
from throttled.throttle.job import wake_throttle_job
from throttled.throttle.outlook import Expiring, expiring
from throttled.throttle.policy import effective_settings, overrides_rate
from throttled.throttle.step import StepSettings

#: Refusals are shown as a warning for this long after the last one.
REFUSALS_SHOWN = dt.timedelta(days=1)


@dataclass(frozen=True)
class QueueOverview:
    """A queue with its backlog: ``counts`` maps execution state → number — in a list, only
    ``pending``, ``releasing`` and ``released_last_hour``; for one queue, every state (the
    finished ones until they are pruned). A queue with partitions (``partition_key``) counts
    theirs too, and ``partitions`` says how many it has."""

    queue: QueueRow
    counts: dict[str, int]
    override: ConfigRow | None
    portal_hold: tuple[dt.datetime | None, str] | None = None  # why its portal cannot be called: (until, reason)
    expiring: Expiring | None = None  # held records whose block ends before their forecast release
    at: dt.datetime | None = None  # when it was judged (aware UTC)
    partitions: int = 0  # its partitions' queues (each with its own window), counted in ``counts``

    @property
    def stopped(self) -> bool:
        """Whether nothing is released now whatever the rate: paused, on hold, or its portal held."""
        return self.queue.state in (QueueState.PAUSED, QueueState.ON_HOLD) or self.portal_hold is not None

    @property
    def warnings(self) -> list[str]:
        """What the customer loses if nobody acts, in words, as judged at ``at``: held records
        that will expire before their turn (if the queue ran from then on), when the first held
        block ends while the queue is stopped, and records refused in the last day."""
        now = self.at or dt.datetime.max.replace(tzinfo=dt.UTC)
        found = []
        e = self.expiring
        if e is not None and e.count:
            found.append(f"{'' if e.complete else 'at least '}{e.count} held will expire before their turn")
        if e is not None and self.stopped and e.first_end is not None:
            found.append(f"stopped: the first held block ends {e.first_end.astimezone(dt.UTC):%Y-%m-%d %H:%M}Z")
        refused_at = self.queue.refused_at
        if self.queue.refused and refused_at is not None and now - refused_at < REFUSALS_SHOWN:
            found.append(f"{self.queue.refused} refused as too long so far, last {refused_at.astimezone(dt.UTC):%Y-%m-%d %H:%M}Z")
        return found

    @property
    def portal_held(self) -> str | None:
        """Why the queue's portal cannot be called now, in words ("portal held until …: reason",
        "portal not usable: the app is not installed …"), or ``None``."""
        if self.portal_hold is None:
            return None
        until, reason = self.portal_hold
        if until is None:
            return f"portal not usable: {reason}"
        return f"portal held until {until.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}Z: {reason}"

    @property
    def backlog(self) -> int:
        return sum(self.counts.get(state, 0) for state in IN_QUEUE)

    @property
    def settings(self) -> StepSettings:
        """The settings in force — the worker's own rule (``throttle.policy``)."""
        return effective_settings(self.queue, self.override)

    @property
    def rate(self) -> tuple[int, int, str, bool]:
        """The rate in force: ``(max_throughput, time_period, time_unit, overridden)``."""
        s = self.settings
        return s.max_throughput, s.time_period, s.time_unit, overrides_rate(self.override)

    @property
    def mode(self) -> str:
        """The mode in force (the override's when it sets one)."""
        return self.settings.mode

    def as_json(self) -> dict[str, Any]:
        """JSON-ready dict (times as ISO-8601 UTC)."""
        return {**jsonable(asdict(self.queue)), "counts": self.counts, "backlog": self.backlog,
                "override": jsonable(asdict(self.override)) if self.override else None,
                "portal_held_until": self.portal_hold[0].isoformat() if self.portal_hold and self.portal_hold[0] else None,
                "portal_hold_reason": self.portal_hold[1] if self.portal_hold else None,
                "expiring": jsonable(asdict(self.expiring)) if self.expiring else None, "warnings": self.warnings,
                "partitions": self.partitions}


def list_queues(conn: Connection, portal_id: int | None = None, now: dt.datetime | None = None) -> list[QueueOverview]:
    """Every queue (of one portal when given) with its backlog (pending and releasing; and
    ``released`` in the last hour), override, its portal's hold at ``now`` (default: the
    database's clock) and the cleaner's last will-expire count.

    Costs O(queues + backlog + the last hour's releases), never the finished rows: this is
    what the status page and ``/api/admin/queues`` serve to every viewer.
    """
    now = now or database_now(conn)
    rows = queues_sql.list_queues(conn, portal_id)
    ids = [q.queue_id for q in rows]
    counts = executions_sql.active_counts(conn, ids)
    released = executions_sql.releases_per_minute(conn, ids, now - dt.timedelta(hours=1), 60)
    # A partition is listed within its step's queue: its counts added there.
    family: dict[str, list[str]] = {}
    for q in rows:
        family.setdefault(q.parent_queue_id or q.queue_id, []).append(q.queue_id)
    queues = [q for q in rows if q.parent_queue_id is None]
    portal_ids = sorted({q.portal_id for q in queues})
    held = portals_sql.blocks(conn, portal_ids, now)
    overrides = queues_sql.configs_of(conn, portal_ids)
    return [
        QueueOverview(q, _sum([counts.get(i, {}) for i in family[q.queue_id]])
                      | {"released_last_hour": sum(sum(released[i]) for i in family[q.queue_id])},
                      overrides.get((q.portal_id, q.action_id)) if q.action_id is not None else None,
                      held.get(q.portal_id), _stored_expiring(q), now, len(family[q.queue_id]) - 1)
        for q in queues
    ]


def _sum(counts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in counts:
        for state, n in c.items():
            total[state] = total.get(state, 0) + n
    return total


def _stored_expiring(q: QueueRow) -> Expiring | None:
    """The cleaner's last count (``scanned`` is not kept: 0)."""
    if q.expiring is None:
        return None
    return Expiring(q.expiring, 0, bool(q.expiring_complete), q.first_block_end, q.expiring_checked_at)


def show_queue(conn: Connection, queue_id: str, now: dt.datetime | None = None) -> QueueOverview:
    """One queue with its backlog, its portal's hold and what will expire, judged at ``now``
    (default: the database's clock). Raises :class:`NotFound`."""
    queue = queues_sql.get_queue(conn, queue_id)
    if queue is None:
        raise NotFound(f"no queue {queue_id}")
    family = queues_sql.family_ids(conn, queue_id)
    counts = _sum(list(executions_sql.execution_counts(conn, family).values()))
    override = queues_sql.get_config(conn, queue.portal_id, queue.action_id) if queue.action_id is not None else None
    now = now or database_now(conn)
    held = portals_sql.blocks(conn, [queue.portal_id], now)
    return QueueOverview(queue, counts, override, held.get(queue.portal_id), _expiring(conn, queue_id, counts, now), now,
                         len(family) - 1)


def expiring_for_action(conn: Connection, portal_id: int, action_id: int, now: dt.datetime) -> dict[str, Expiring]:
    """``{queue_id: Expiring}`` of the queues an override of (portal, action) applies to, at
    the settings now in force — what an operator is told after changing an override."""
    return {queue_id: expiring(conn, queue_id, now) for queue_id in queues_sql.queue_ids_for_action(conn, portal_id, action_id)}


def _expiring(conn: Connection, queue_id: str, counts: dict[str, int], now: dt.datetime) -> Expiring | None:
    return expiring(conn, queue_id, now) if counts.get("pending") else None


def pause_queue(conn: Connection, queue_id: str, now: dt.datetime) -> QueueOverview:
    """Stop releasing from the queue (and its partitions) until resumed (the backlog is kept)."""
    _not_a_partition(conn, queue_id)
    _require(bool(queues_sql.set_family_state(conn, queue_id, QueueState.PAUSED, now)), queue_id)
    return show_queue(conn, queue_id, now)


def resume_queue(conn: Connection, queue_id: str, now: dt.datetime) -> QueueOverview:
    """Release again at the queue's rate (and its partitions'); also lifts a hold, and the
    releases HubSpot failed to take go back in line now (not when their lease runs out)."""
    return _restart(conn, queue_id, QueueState.ACTIVE, now)


def drain_queue(conn: Connection, queue_id: str, now: dt.datetime) -> QueueOverview:
    """Release the whole backlog (of every partition) now, ignoring the rate and business
    hours (and any releases HubSpot failed to take); each queue is active again once empty."""
    return _restart(conn, queue_id, QueueState.DRAINING, now)


def _restart(conn: Connection, queue_id: str, state: QueueState, now: dt.datetime) -> QueueOverview:
    _not_a_partition(conn, queue_id)
    family = queues_sql.set_family_state(conn, queue_id, state, now)
    _require(bool(family), queue_id)
    executions_sql.requeue_deferred_in_queue(conn, family, now)
    wake_throttle_job(conn, family, now)
    return show_queue(conn, queue_id, now)


def purge_queue(conn: Connection, queue_id: str, now: dt.datetime) -> int:
    """Cancel the queue's pending backlog, its partitions' too (never completed; HubSpot
    lets each enrollment go on when its block expires). Returns how many were cancelled."""
    _not_a_partition(conn, queue_id)
    family = queues_sql.family_ids(conn, queue_id)
    _require(bool(family), queue_id)
    cancelled = executions_sql.cancel_pending(conn, family, "purged by operator", now)
    wake_throttle_job(conn, family, now)
    return cancelled


def release_history(conn: Connection, queue_ids: list[str], now: dt.datetime, minutes: int = 60) -> dict[str, list[int]]:
    """Releases per minute of each queue over the last ``minutes`` minutes (the current,
    partial minute last): ``{queue_id: [count, …]}`` of length ``minutes``."""
    end = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    return executions_sql.releases_per_minute(conn, queue_ids, end - dt.timedelta(minutes=minutes), minutes)


def _not_a_partition(conn: Connection, queue_id: str) -> None:
    """Operators act on a step's queue and all its partitions together: a partition paused
    alone would hide in every list behind its step's state (a new-user trial)."""
    queue = queues_sql.get_queue(conn, queue_id)
    if queue is not None and queue.parent_queue_id is not None:
        raise Conflict(f"{queue_id} is one partition of {queue.parent_queue_id}: pause, resume, drain or purge that "
                       "queue, which acts on every partition")


def _require(found: bool, queue_id: str) -> None:
    if not found:
        raise NotFound(f"no queue {queue_id}")
