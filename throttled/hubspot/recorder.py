"""The outcome writes of sends: what the portal sender records after HubSpot answered.

Each function is one transaction's work (run through :meth:`Recorder.write`, which retries
through short database outages). They are the only writers of send outcomes:

- :func:`released` (:func:`released_groups`: several batches) — HubSpot acknowledged:
  released at the acknowledgement time (the time the rate window counts), the queues'
  failure counts and the portal's hold reset;
- :func:`ended` — refused for good: ``released`` (already completed), ``expired`` or ``failed``;
- :func:`failing` — a transient failure: the attempt is counted, the lease runs on;
- :func:`deferred` — given up: the leases lapse, each queue counts a failure (enough in a
  row put it on hold);
- :func:`portal_held` — HubSpot refused the whole portal: hold it, put the releases back in
  line unsent;
- :func:`requeued` — put back in line unsent (a portal already held);
- :func:`handed_back` — put back in line at shutdown (those on the wire count as unanswered).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.engine import Connection

from throttled.db import executions as executions_sql
from throttled.db import portals as portals_sql
from throttled.db import queues as queues_sql
from throttled.db.engine import Database, DatabaseUnavailable
from throttled.db.executions import Lease
from throttled.db.group_commit import GroupCommit
from throttled.hubspot.answers import Action, Answer, next_day_hold
from throttled.states import ExecutionState

log = structlog.get_logger("throttled.hubspot.recorder")

@dataclass(frozen=True, slots=True)
class HoldConfig:
    """Holds, durations in seconds: ``hold_after`` failures in a row put a queue on hold for
    ``hold_s · 2^holds`` (at most ``max_hold_s``); a portal HubSpot refuses as a whole is
    held ``portal_hold_s · 2^holds`` (at most ``max_portal_hold_s``)."""

    hold_after: int = 3
    hold_s: float = 1800.0
    max_hold_s: float = 86400.0
    portal_hold_s: float = 60.0
    max_portal_hold_s: float = 3600.0


def released(conn: Connection, releases: Sequence[Lease], acked_at: dt.datetime) -> None:
    """HubSpot acknowledged these completions at ``acked_at``."""
    released_groups(conn, [(releases, acked_at)])


def released_groups(conn: Connection, groups: Sequence[tuple[Sequence[Lease], dt.datetime]]) -> None:
    """:func:`released` for several acknowledged batches (each with its own time) at once."""
    executions_sql.mark_released_at(conn, [(r.callback_id, acked_at) for releases, acked_at in groups
                                           for r in releases])
    latest = max(acked_at for _, acked_at in groups)
    queues_sql.record_success(conn, sorted({r.queue_id for releases, _ in groups for r in releases}), latest)
    portals_sql.clear_holds(conn, sorted({r.portal_id for releases, _ in groups for r in releases}))


def ended(conn: Connection, releases: Sequence[Lease], answer: Answer, now: dt.datetime) -> str:
    """HubSpot refused these callbacks for good; returns the state they ended in."""
    if answer.action is Action.ALREADY_DONE:
        released(conn, releases, now)
        return ExecutionState.RELEASED
    state = ExecutionState.EXPIRED if answer.action is Action.EXPIRED else ExecutionState.FAILED
    if state == ExecutionState.EXPIRED:
        _note_early_expiry(conn, releases, now)
    executions_sql.mark_finished(conn, [r.callback_id for r in releases], state, answer.reason, now)
    return state


#: HubSpot may end a block a little before our ``expires_at`` (its clock, its answer's
#: latency); earlier than this is worth an operator's attention.
EARLY_EXPIRY = dt.timedelta(hours=1)


def _note_early_expiry(conn: Connection, releases: Sequence[Lease], now: dt.datetime) -> None:
    """Log callbacks HubSpot calls expired well before the block we asked for ran out: the
    sign that HubSpot caps blocks below ``THROTTLED_BLOCK_MAX`` (its maximum is undocumented)."""
    for callback_id, asked, left in executions_sql.blocks_ending_after(conn, [r.callback_id for r in releases],
                                                                        now + EARLY_EXPIRY):
        log.warning("callback.expired_early", callback_id=callback_id, block_asked=str(asked), left=str(left),
                    note="HubSpot ended this block before the length we asked for: lower THROTTLED_BLOCK_MAX "
                         "below the asked length")


def failing(conn: Connection, releases: Sequence[Lease], answer: Answer) -> None:
    """A transient failure: count the attempt and keep the reason; still leased."""
    executions_sql.note_attempt_failed(conn, [r.callback_id for r in releases], answer.reason)


def deferred(conn: Connection, releases: Sequence[Lease], answer: Answer, now: dt.datetime,
             config: HoldConfig) -> list[str]:
    """Given up: the executions wait for their lease to lapse; each of their queues counts a
    failure. Returns the queues this put on hold."""
    executions_sql.note_attempt_failed(conn, [r.callback_id for r in releases], answer.reason)
    return queues_sql.record_failure(
        conn, sorted({r.queue_id for r in releases}), answer.reason, now,
        threshold=config.hold_after, hold_s=config.hold_s, max_hold_s=config.max_hold_s,
    )


def portal_held(conn: Connection, releases: Sequence[Lease], portal_id: int, answer: Answer, now: dt.datetime,
                config: HoldConfig) -> dt.datetime | None:
    """HubSpot refused the portal as a whole: hold it (unless the answer is a revocation,
    which the portal's status already holds) and put ``releases`` back in line unsent —
    HubSpot completed none of them. Returns when the hold ends (``None`` for a revocation)."""
    executions_sql.requeue_unsent(conn, [r.callback_id for r in releases])
    if answer.action is Action.REVOKED:
        return None
    return portals_sql.hold(conn, portal_id, answer.reason, now,
                            until=next_day_hold(now) if answer.until_next_day else None,
                            first_s=config.portal_hold_s, max_s=config.max_portal_hold_s)


def requeued(conn: Connection, callback_ids: Sequence[str]) -> int:
    """Put releases handed out but never sent back in line at once."""
    return executions_sql.requeue_unsent(conn, callback_ids)


def handed_back(conn: Connection, callback_ids: Sequence[str], call_s: float) -> int:
    """Shutdown: put every release still in our hands back in line at once; one a call had
    started on counts as unanswered for up to ``call_s`` seconds after the call's start."""
    return executions_sql.requeue_releases(conn, callback_ids, call_s)


#: How long an outcome write other than an acknowledgement is tried through an outage,
#: seconds: these pick their rows by callback id, not by lease, so a late one could act on
#: a release another sender leased meanwhile; this stays well inside the lease a call keeps.
WRITE_GIVE_UP_S = 7.5


class Recorder:
    """Runs outcome writes, retrying through short database outages. Acknowledged batches of
    every portal are recorded together (:meth:`released_together`) and tried for up to
    ``acks_give_up_s`` seconds — HubSpot completed them, so recording that late is still true
    — other outcomes for :data:`WRITE_GIVE_UP_S`."""

    def __init__(self, db: Database, acks_give_up_s: float = 60.0) -> None:
        self.db = db
        self.acks_give_up_s = acks_give_up_s
        self.acks: GroupCommit[tuple[Sequence[Lease], dt.datetime], bool] = GroupCommit(self._write_acks, False)

    async def released_together(self, releases: Sequence[Lease], acked_at: dt.datetime) -> bool:
        """:func:`released` in one transaction with every other batch acknowledged meanwhile;
        True once written (False: see :meth:`write`)."""
        return await self.acks.submit((releases, acked_at))

    async def _write_acks(self, groups: list[tuple[Sequence[Lease], dt.datetime]]) -> list[bool]:
        done, _ = await self.write(released_groups, groups, give_up_s=self.acks_give_up_s)
        return [done] * len(groups)

    async def write(self, fn: Callable[..., Any], *args: Any, give_up_s: float = WRITE_GIVE_UP_S) -> tuple[bool, Any]:
        """Run ``fn(conn, *args)`` in a transaction; ``(True, result)`` once it committed,
        ``(False, None)`` if the database stayed unreachable for ``give_up_s`` seconds (the
        leases then lapse and the callbacks are sent again — HubSpot answers "already
        completed", which counts as done)."""
        try:
            return True, await self.db.transaction_through_outage(fn, *args, give_up_s=give_up_s)
        except DatabaseUnavailable:
            log.error("callbacks.outcome_not_recorded", operation=getattr(fn, "__name__", "?"))
            return False, None
