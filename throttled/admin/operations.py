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
from throttled.db import jobs as jobs_sql
from throttled.db import portals as portals_sql
from throttled.db import queues as queues_sql
from throttled.db.jobs import JobInfo
from throttled.db.portals import PortalRow
from throttled.db.queues import ConfigRow, QueueRow
from throttled.db.time import database_now
from throttled.ingest.inputs import InvalidInput, Override
from throttled.throttle.policy import effective_settings, overrides_rate
from throttled.throttle.step import StepSettings
from throttled.throttle.job import wake_throttle_job


class NotFound(Exception):
    """The named queue, override or job does not exist (HTTP 404, CLI exit 1)."""


class Conflict(Exception):
    """The action does not apply in the object's current state, e.g. retrying a completed
    job (HTTP 409, CLI exit 1)."""


@dataclass(frozen=True)
class QueueOverview:
    """A queue with its backlog: ``counts`` maps execution state → number."""

    queue: QueueRow
    counts: dict[str, int]
    override: ConfigRow | None
    portal_hold: tuple[dt.datetime, str] | None = None  # the portal's (held_until, reason), if held

    @property
    def portal_held(self) -> str | None:
        """"portal held until …: reason" while HubSpot's refusal of the portal holds the queue."""
        if self.portal_hold is None:
            return None
        until, reason = self.portal_hold
        return f"portal held until {until.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M:%S}Z: {reason}"

    @property
    def backlog(self) -> int:
        return self.counts.get("pending", 0) + self.counts.get("releasing", 0)

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

    def as_json(self) -> dict:
        """JSON-ready dict (times as ISO-8601 UTC)."""
        return {**_jsonable(asdict(self.queue)), "counts": self.counts, "backlog": self.backlog,
                "override": _jsonable(asdict(self.override)) if self.override else None,
                "portal_held_until": self.portal_hold[0].isoformat() if self.portal_hold else None,
                "portal_hold_reason": self.portal_hold[1] if self.portal_hold else None}


@dataclass(frozen=True)
class PortalOverview:
    """A portal as operators see it — never its tokens. ``token_status``: ``valid``,
    ``expired`` (the access token is refreshed on next use) or ``missing``."""

    portal_id: int
    status: str
    token_status: str
    expires_at: dt.datetime | None
    scopes: list[str]
    key_id: str | None
    held_until: dt.datetime | None  # HubSpot refused the portal as a whole: no calls until then
    hold_reason: str | None
    installed_at: dt.datetime
    updated_at: dt.datetime

    def as_json(self) -> dict:
        """JSON-ready dict (times as ISO-8601 UTC)."""
        return _jsonable(asdict(self))


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
    requeued = executions_sql.requeue_deferred(conn, portal_id, now)
    for queue in queues_sql.list_queues(conn, portal_id):
        wake_throttle_job(conn, queue.queue_id, now)
    return requeued


def list_portals(conn: Connection, now: dt.datetime) -> list[PortalOverview]:
    """Every installed portal with its status and token expiry, by id (no token bytes)."""
    return [_portal_overview(p, now) for p in portals_sql.list_portals(conn)]


def _portal_overview(p: PortalRow, now: dt.datetime) -> PortalOverview:
    if p.access_token is None or p.expires_at is None:
        token_status = "missing"
    else:
        token_status = "valid" if p.expires_at > now else "expired"
    held = p.held_at(now)
    return PortalOverview(p.portal_id, p.status, token_status, p.expires_at, p.scopes, p.key_id,
                          p.held_until if held else None, p.hold_reason if held else None, p.installed_at, p.updated_at)


# -- queues ----------------------------------------------------------------------------------


def list_queues(conn: Connection, portal_id: int | None = None, now: dt.datetime | None = None) -> list[QueueOverview]:
    """Every queue (of one portal when given) with its backlog, override and its portal's
    hold at ``now`` (default: the database's clock)."""
    queues = queues_sql.list_queues(conn, portal_id)
    counts = executions_sql.execution_counts(conn, [q.queue_id for q in queues])
    held = portals_sql.holds(conn, sorted({q.portal_id for q in queues}), now or database_now(conn))
    return [
        QueueOverview(q, counts.get(q.queue_id, {}),
                      queues_sql.get_config(conn, q.portal_id, q.action_id) if q.action_id is not None else None,
                      held.get(q.portal_id))
        for q in queues
    ]


def show_queue(conn: Connection, queue_id: str) -> QueueOverview:
    """One queue with its backlog. Raises :class:`NotFound`."""
    queue = queues_sql.get_queue(conn, queue_id)
    if queue is None:
        raise NotFound(f"no queue {queue_id}")
    counts = executions_sql.execution_counts(conn, [queue_id]).get(queue_id, {})
    override = queues_sql.get_config(conn, queue.portal_id, queue.action_id) if queue.action_id is not None else None
    held = portals_sql.holds(conn, [queue.portal_id], database_now(conn))
    return QueueOverview(queue, counts, override, held.get(queue.portal_id))


def pause_queue(conn: Connection, queue_id: str, now: dt.datetime) -> QueueOverview:
    """Stop releasing from the queue until resumed (the backlog is kept)."""
    _require(queues_sql.set_state(conn, queue_id, "paused", now), queue_id)
    return show_queue(conn, queue_id)


def resume_queue(conn: Connection, queue_id: str, now: dt.datetime) -> QueueOverview:
    """Release again at the queue's rate; also lifts a hold, and the releases HubSpot
    failed to take go back in line now (not when their lease runs out)."""
    _require(queues_sql.set_state(conn, queue_id, "active", now), queue_id)
    executions_sql.requeue_deferred_in_queue(conn, queue_id, now)
    wake_throttle_job(conn, queue_id, now)
    return show_queue(conn, queue_id)


def drain_queue(conn: Connection, queue_id: str, now: dt.datetime) -> QueueOverview:
    """Release the whole backlog now, ignoring the rate and release window (and any
    releases HubSpot failed to take); the queue is active again once empty."""
    _require(queues_sql.set_state(conn, queue_id, "draining", now), queue_id)
    executions_sql.requeue_deferred_in_queue(conn, queue_id, now)
    wake_throttle_job(conn, queue_id, now)
    return show_queue(conn, queue_id)


def purge_queue(conn: Connection, queue_id: str, now: dt.datetime) -> int:
    """Cancel the queue's pending backlog (never completed; HubSpot lets each enrollment
    go on when its block expires). Returns how many were cancelled."""
    _require(queues_sql.get_queue(conn, queue_id) is not None, queue_id)
    cancelled = executions_sql.cancel_pending(conn, queue_id, "purged by operator")
    wake_throttle_job(conn, queue_id, now)
    return cancelled


def release_history(conn: Connection, queue_ids: list[str], now: dt.datetime, minutes: int = 60) -> dict[str, list[int]]:
    """Releases per minute of each queue over the last ``minutes`` minutes (the current,
    partial minute last): ``{queue_id: [count, …]}`` of length ``minutes``."""
    end = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    return executions_sql.releases_per_minute(conn, queue_ids, end - dt.timedelta(minutes=minutes), minutes)


# -- jobs --------------------------------------------------------------------------------

JOB_STATES = ("available", "scheduled", "executing", "retryable", "completed", "discarded", "cancelled")
MAX_JOBS = 500
_RETRYABLE = ("discarded", "cancelled", "retryable", "scheduled")


def list_jobs(conn: Connection, state: str | None = None, kind: str | None = None, limit: int = 100) -> list[JobInfo]:
    """Jobs, newest first. Raises ``InvalidInput`` naming ``state`` (not a job state),
    ``kind`` (over 100 characters) or ``limit`` (outside 1..500)."""
    if state is not None and state not in JOB_STATES:
        raise InvalidInput("state", f"must be one of {', '.join(JOB_STATES)}")
    if kind is not None and not 0 < len(kind) <= 100:
        raise InvalidInput("kind", "must be 1 to 100 characters")
    if not 1 <= limit <= MAX_JOBS:
        raise InvalidInput("limit", f"must be between 1 and {MAX_JOBS}")
    return jobs_sql.list_jobs(conn, state, kind, limit)


def retry_job(conn: Connection, job_id: int, now: dt.datetime) -> JobInfo:
    """Run a discarded, cancelled, retryable or scheduled job now (one more attempt if its
    attempts were spent). Raises :class:`NotFound`, or :class:`Conflict` in another state or
    when another live job holds its unique key (e.g. the cleaner gave the queue a new one)."""
    job = _job(conn, job_id)
    if not jobs_sql.retry_now(conn, job_id, now):
        if job.state in _RETRYABLE:
            raise Conflict(f"job {job_id}: another live job holds its key {job.unique_key}")
        raise Conflict(f"job {job_id} is {job.state}: only discarded, cancelled, retryable or scheduled jobs can be retried")
    jobs_sql.notify(conn)  # the scheduler claims it now, not at its next poll
    return _job(conn, job_id)


def cancel_job(conn: Connection, job_id: int, now: dt.datetime) -> JobInfo:
    """Cancel a live job (a running handler's outcome is then ignored). Raises
    :class:`NotFound`, or :class:`Conflict` when the job is already final."""
    job = _job(conn, job_id)
    if not jobs_sql.cancel_now(conn, job_id, now):
        raise Conflict(f"job {job_id} is {job.state}: only live jobs can be cancelled")
    return _job(conn, job_id)


def job_json(job: JobInfo) -> dict:
    """JSON-ready dict of a job (times as ISO-8601 UTC)."""
    return _jsonable(asdict(job))


def _job(conn: Connection, job_id: int) -> JobInfo:
    job = jobs_sql.get_job(conn, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def _require(found: bool, queue_id: str) -> None:
    if not found:
        raise NotFound(f"no queue {queue_id}")


def _jsonable(record: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in record.items()}
