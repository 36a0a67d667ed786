"""What a job handler returns; the scheduler applies it as one job-table transition."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Complete:
    """The job is done."""


@dataclass(frozen=True, slots=True)
class Snooze:
    """Run again at ``until`` (aware UTC); spends no attempt."""

    until: dt.datetime


@dataclass(frozen=True, slots=True)
class Retry:
    """The attempt failed; retry after backoff (or discard when attempts are spent)."""

    error: str


@dataclass(frozen=True, slots=True)
class Discard:
    """Give up for good, recording ``reason``."""

    reason: str


@dataclass(frozen=True, slots=True)
class Cancel:
    """Stop the job, recording ``reason``."""

    reason: str


@dataclass(frozen=True, slots=True)
class Applied:
    """The handler already applied its outcome inside its own transaction.

    Used when the outcome must commit atomically with the handler's work — the throttle
    worker finishes its job in the same transaction that found the queue empty, under the
    queue's row lock, so ingest can never slip in between (design invariant 3).
    """


Outcome = Complete | Snooze | Retry | Discard | Cancel | Applied


class LeaseLost(Exception):
    """The job was rescued from this daemon (its lease lapsed); the handler's work was
    rolled back and nothing is applied."""
