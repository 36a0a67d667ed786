"""Operator actions on queues and overrides; each is one transaction (``fn(conn, …)``).

Every change that should reach running daemons is written with what makes them notice at
once: overrides NOTIFY the config channel, and the affected queues' jobs are woken (made
due now), so a new rate, a resume or a drain applies at the job's next run on whichever
daemon claims it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from sqlalchemy.engine import Connection

from throttled.db import executions as executions_sql
from throttled.db import queues as queues_sql
from throttled.db.queues import ConfigRow, QueueRow
from throttled.ingest.inputs import Override
from throttled.ingest.store import wake_throttle_job


class NotFound(Exception):
    """The named queue or override does not exist (HTTP 404, CLI exit 1)."""


@dataclass(frozen=True)
class QueueOverview:
    """A queue with its backlog: ``counts`` maps execution state → number."""

    queue: QueueRow
    counts: dict[str, int]
    override: ConfigRow | None

    @property
    def backlog(self) -> int:
        return self.counts.get("pending", 0) + self.counts.get("releasing", 0)

    def as_json(self) -> dict:
        """JSON-ready dict (times as ISO-8601 UTC)."""
        return {**_jsonable(asdict(self.queue)), "counts": self.counts, "backlog": self.backlog,
                "override": _jsonable(asdict(self.override)) if self.override else None}


# -- overrides --------------------------------------------------------------------------


def get_config(conn: Connection, portal_id: int, action_id: int) -> ConfigRow:
    """The override for (portal, action). Raises :class:`NotFound`."""
    config = queues_sql.get_config(conn, portal_id, action_id)
    if config is None:
        raise NotFound(f"no override for portal {portal_id}, action {action_id}")
    return config


def set_config(conn: Connection, portal_id: int, action_id: int, override: Override, now: dt.datetime) -> ConfigRow:
    """Create or replace the override and make every daemon apply it now."""
    config = queues_sql.upsert_config(conn, ConfigRow(
        portal_id, action_id, override.max_throughput, override.time_period, override.time_unit, override.mode, now))
    _announce(conn, portal_id, action_id, now)
    return config


def delete_config(conn: Connection, portal_id: int, action_id: int, now: dt.datetime) -> None:
    """Remove the override (the steps' inputs apply again). Raises :class:`NotFound`."""
    if not queues_sql.delete_config(conn, portal_id, action_id):
        raise NotFound(f"no override for portal {portal_id}, action {action_id}")
    _announce(conn, portal_id, action_id, now)


def _announce(conn: Connection, portal_id: int, action_id: int, now: dt.datetime) -> None:
    queues_sql.notify_config_change(conn, portal_id, action_id)
    for queue_id in queues_sql.queue_ids_for_action(conn, portal_id, action_id):
        wake_throttle_job(conn, queue_id, now)


# -- portals --------------------------------------------------------------------------------


def portal_installed(conn: Connection, portal_id: int, now: dt.datetime) -> int:
    """A portal was (re-)installed: releases that failed for it go back in line now and its
    queues' jobs wake, instead of waiting out their leases. Returns how many were requeued."""
    requeued = executions_sql.requeue_deferred(conn, portal_id)
    for queue in queues_sql.list_queues(conn, portal_id):
        wake_throttle_job(conn, queue.queue_id, now)
    return requeued


# -- queues ----------------------------------------------------------------------------------


def list_queues(conn: Connection, portal_id: int | None = None) -> list[QueueOverview]:
    """Every queue (of one portal when given) with its backlog and override."""
    queues = queues_sql.list_queues(conn, portal_id)
    counts = executions_sql.execution_counts(conn, [q.queue_id for q in queues])
    return [
        QueueOverview(q, counts.get(q.queue_id, {}),
                      queues_sql.get_config(conn, q.portal_id, q.action_id) if q.action_id is not None else None)
        for q in queues
    ]


def show_queue(conn: Connection, queue_id: str) -> QueueOverview:
    """One queue with its backlog. Raises :class:`NotFound`."""
    queue = queues_sql.get_queue(conn, queue_id)
    if queue is None:
        raise NotFound(f"no queue {queue_id}")
    counts = executions_sql.execution_counts(conn, [queue_id]).get(queue_id, {})
    override = queues_sql.get_config(conn, queue.portal_id, queue.action_id) if queue.action_id is not None else None
    return QueueOverview(queue, counts, override)


def pause_queue(conn: Connection, queue_id: str, now: dt.datetime) -> QueueOverview:
    """Stop releasing from the queue until resumed (the backlog is kept)."""
    _require(queues_sql.set_state(conn, queue_id, "paused", now), queue_id)
    return show_queue(conn, queue_id)


def resume_queue(conn: Connection, queue_id: str, now: dt.datetime) -> QueueOverview:
    """Release again at the queue's rate; also lifts a hold, and the releases HubSpot
    failed to take go back in line now (not when their lease runs out)."""
    _require(queues_sql.set_state(conn, queue_id, "active", now), queue_id)
    executions_sql.requeue_deferred_in_queue(conn, queue_id)
    wake_throttle_job(conn, queue_id, now)
    return show_queue(conn, queue_id)


def drain_queue(conn: Connection, queue_id: str, now: dt.datetime) -> QueueOverview:
    """Release the whole backlog now, ignoring the rate and release window (and any
    releases HubSpot failed to take); the queue is active again once empty."""
    _require(queues_sql.set_state(conn, queue_id, "draining", now), queue_id)
    executions_sql.requeue_deferred_in_queue(conn, queue_id)
    wake_throttle_job(conn, queue_id, now)
    return show_queue(conn, queue_id)


def purge_queue(conn: Connection, queue_id: str, now: dt.datetime) -> int:
    """Cancel the queue's pending backlog (never completed; HubSpot lets each enrollment
    go on when its block expires). Returns how many were cancelled."""
    _require(queues_sql.get_queue(conn, queue_id) is not None, queue_id)
    cancelled = executions_sql.cancel_pending(conn, queue_id, "purged by operator")
    wake_throttle_job(conn, queue_id, now)
    return cancelled


def _require(found: bool, queue_id: str) -> None:
    if not found:
        raise NotFound(f"no queue {queue_id}")


def _jsonable(record: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in record.items()}
