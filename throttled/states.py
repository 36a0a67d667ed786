"""Every state machine of the daemon, typed, with its transitions and the one caller of
each — pure. The SQL that performs a transition names the states it expects (so a late or
repeated transition changes nothing); the schema's CHECK constraints list the same values
(a test compares them).

Execution (``action_executions.state``) — one enrolled record, from webhook to HubSpot:

===========================  ==========================================  =====================================
transition                   SQL (``db/executions.py``)                  the one caller
===========================  ==========================================  =====================================
(new) → pending              ``insert_executions``                       ``ingest.store`` (the group commit)
pending → releasing          ``take_pending`` (leased to a daemon)       ``throttle.worker``
releasing → released         ``mark_released`` (at the acknowledgement)  ``hubspot.recorder.released``
releasing → failed | expired ``mark_finished``                           ``hubspot.recorder.ended``
releasing → pending          ``requeue_lapsed_releases`` (lease lapsed   ``throttle.worker``
                             or its daemon dead)
releasing → pending          ``requeue_releases`` (shutdown)             ``hubspot.recorder.handed_back``
releasing → pending          ``requeue_unsent`` (portal held / refused)  ``hubspot.recorder``
releasing → pending          ``requeue_deferred[_in_queue]`` (after a    ``control`` (install, resume, drain)
                             failed send)
pending → expired            ``expire_overdue`` (the block ran out)      ``cleaner``
pending → cancelled          ``cancel_pending``                          ``control.purge_queue``
===========================  ==========================================  =====================================

Released, failed, expired and cancelled are final. A release whose answer was lost comes back
to pending with ``unanswered_at`` set; if HubSpot then says "already completed" it ends
released like any other.

Job (``jobs.state``, Oban/River) — transitions in ``db/jobs.py``:

===================================  =============================  ==================================
transition                           SQL                            the one caller
===================================  =============================  ==================================
(new) → available | scheduled        ``insert_job``, ``ensure_…``   ``throttle.job``, ``jobs.cron``
scheduled | retryable → available    ``stage_due_jobs``, ``wake_job``  scheduler claim; ``throttle.job``
available → executing                ``claim_due_jobs``             ``jobs.scheduler``
executing → completed | scheduled    ``complete_job``, ``snooze_job``  the handler's outcome (scheduler,
                                                                    or the throttle worker in its run)
executing → retryable | discarded    ``retry_job``                  ``jobs.scheduler`` (Retry outcome)
executing → discarded | cancelled    ``discard_job``, ``cancel_job``  ``jobs.scheduler``
executing → available | discarded    ``rescue_expired_leases``      ``jobs.scheduler`` (rescue loop)
executing → available                ``hand_back_owned_jobs``       ``jobs.scheduler`` (shutdown)
final | waiting → available          ``retry_now``                  ``control.retry_job``
live → cancelled                     ``cancel_now``                 ``control.cancel_job``
final → (deleted)                    ``prune_jobs``                 ``cleaner``
===================================  =============================  ==================================

Queue (``queues.state``) — ``db/queues.py``: active ⇄ paused (``set_state``,
``control.pause_queue``/``resume_queue``); active → on_hold (``record_failure``, the
recorder's given-up batches) → active (``record_success``, or a resume); any → draining
(``control.drain_queue``) → active (the worker, once the backlog is gone).

Portal (``portals.status``) — ``db/portals.py``: active (``save_install``) → revoked
(``revoke``, the token store on a dead refresh token) → active (installed again).
``suspended`` is reserved (the schema allows it; nothing sets it).
"""

from __future__ import annotations

import enum


class ExecutionState(enum.StrEnum):
    """An enrolled record's state (``action_executions.state``)."""

    PENDING = "pending"
    RELEASING = "releasing"
    RELEASED = "released"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


#: Executions still in a queue's hands (its backlog).
IN_QUEUE = (ExecutionState.PENDING, ExecutionState.RELEASING)
#: Final states an execution ends in without a release.
ENDED_UNRELEASED = (ExecutionState.FAILED, ExecutionState.EXPIRED, ExecutionState.CANCELLED)


class JobState(enum.StrEnum):
    """A job's state (``jobs.state``)."""

    AVAILABLE = "available"
    SCHEDULED = "scheduled"
    EXECUTING = "executing"
    RETRYABLE = "retryable"
    COMPLETED = "completed"
    DISCARDED = "discarded"
    CANCELLED = "cancelled"


#: Jobs that will still run (the unique index covers these).
LIVE_JOBS = (JobState.AVAILABLE, JobState.SCHEDULED, JobState.EXECUTING, JobState.RETRYABLE)
#: Jobs that are over.
FINAL_JOBS = (JobState.COMPLETED, JobState.DISCARDED, JobState.CANCELLED)


class QueueState(enum.StrEnum):
    """A queue's state (``queues.state``)."""

    ACTIVE = "active"
    PAUSED = "paused"
    ON_HOLD = "on_hold"
    DRAINING = "draining"


class NamedThrottleState(enum.StrEnum):
    """A named throttle's state (``named_throttles.state``): ``active`` takes new records;
    ``inactive`` and ``deleted`` answer a step naming it with a clear outcome (``hubspot/
    outputs.py``) and keep releasing what is already held."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    DELETED = "deleted"


class PortalStatus(enum.StrEnum):
    """A portal's status (``portals.status``)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
