"""The job table as operators see it: list, retry, cancel."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from sqlalchemy.engine import Connection

from throttled.control import Conflict, NotFound, jsonable
from throttled.db import jobs as jobs_sql
from throttled.db.jobs import JobInfo
from throttled.ingest.inputs import InvalidInput
from throttled.states import JobState

JOB_STATES: tuple[str, ...] = tuple(s.value for s in JobState)
MAX_JOBS = 500
_RETRYABLE = (JobState.DISCARDED, JobState.CANCELLED, JobState.RETRYABLE, JobState.SCHEDULED)


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


def job_json(job: JobInfo) -> dict[str, Any]:
    """JSON-ready dict of a job (times as ISO-8601 UTC)."""
    return jsonable(asdict(job))


def _job(conn: Connection, job_id: int) -> JobInfo:
    job = jobs_sql.get_job(conn, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job
