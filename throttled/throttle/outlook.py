"""A queue's release forecast as the database has it: for the webhook's block length and for
"will expire before release" on the status views (counted on demand for one queue, and kept
on the queue row by the cleaner for the lists: ``refresh_expiring``).

Reads the queue's effective settings (the step's, an operator's override on top:
``policy.effective_settings``), its recent releases and in-flight sends, and its pending
backlog, and builds the pure :class:`~throttled.throttle.forecast.Schedule`. The forecast
assumes the queue runs from now on: a paused queue, a held portal or a HubSpot outage delay
releases but not the blocks, which is what the "will expire" count shows operators.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from throttled.db import executions as executions_sql
from throttled.db import queues as queues_sql
from throttled.states import QueueState
from throttled.throttle.forecast import Schedule
from throttled.throttle.policy import effective_settings
from throttled.throttle.rate import Throttle

#: Most pending executions the "will expire" count looks at per queue (release order); a
#: longer backlog is reported as "at least".
EXPIRING_SCAN = 100_000


@dataclass(frozen=True, slots=True)
class Outlook:
    """A queue's schedule at ``now`` and the backlog a new record waits behind.

    Attributes:
        schedule: when the next releases happen at the latest.
        period: the rate's period in force (a block is never shorter).
        backlog: pending executions by priority.
        draining: an operator drains the queue: everything goes now, whatever the rate.
    """

    schedule: Schedule
    period: dt.timedelta
    backlog: dict[int, int]
    draining: bool
    now: dt.datetime

    def ahead_of(self, priority: int) -> int:
        """Pending executions released before a new one of ``priority`` (the same or higher
        priority; arrival order within a priority)."""
        return sum(n for p, n in self.backlog.items() if p >= priority)

    def releases(self, positions: Sequence[int], until: dt.datetime) -> list[dt.datetime | None]:
        """Forecast release of each position (1 = next; any order), ``None`` past ``until``."""
        if self.draining:
            return [self.now for _ in positions]
        order = sorted(set(positions))
        found = dict(zip(order, self.schedule.releases_of(order, until), strict=True))
        return [found[p] for p in positions]


def read_outlook(conn: Connection, queue_id: str, now: dt.datetime) -> Outlook | None:
    """The queue's :class:`Outlook` at ``now`` (aware UTC); ``None`` for an unknown queue."""
    return read_outlooks(conn, [queue_id], now).get(queue_id)


def read_outlooks(conn: Connection, queue_ids: Sequence[str], now: dt.datetime) -> dict[str, Outlook]:
    """:func:`read_outlook` of many queues in four statements, whatever their number (a
    group commit spanning 1,000 queues made 5,000 before); unknown queues are left out."""
    queues = queues_sql.get_queues(conn, queue_ids)
    overrides = queues_sql.configs_of(conn, sorted({q.portal_id for q in queues.values() if q.action_id is not None}))
    throttles = {}
    for queue_id, queue in queues.items():
        override = overrides.get((queue.portal_id, queue.action_id)) if queue.action_id is not None else None
        settings = effective_settings(queue, override)
        throttles[queue_id] = (settings, Throttle.for_mode(settings.mode, settings.rate))
    window = executions_sql.window_state_of(  # recent releases and sends in flight, one snapshot
        conn, {q: (now - t.longest_period, t.history) for q, (_, t) in throttles.items()})
    backlog = executions_sql.pending_by_priority_of(conn, list(queues))
    outlooks = {}
    for queue_id, (settings, throttle) in throttles.items():
        recent, in_flight = window[queue_id]
        outlooks[queue_id] = Outlook(Schedule.of(throttle, settings.hours, recent, in_flight, now), settings.rate.period,
                                     backlog.get(queue_id, {}), queues[queue_id].state == QueueState.DRAINING, now)
    return outlooks


@dataclass(frozen=True, slots=True)
class Expiring:
    """Pending executions whose block ends before their forecast release: ``count`` of the
    first ``scanned`` in release order (``complete`` when that was all of them);
    ``first_end``: the earliest end of a scanned one's block (aware UTC) — how long a paused
    or held queue has before its records start to go on without a release; ``at``: when it
    was counted."""

    count: int
    scanned: int
    complete: bool
    first_end: dt.datetime | None = None
    at: dt.datetime | None = None


def expiring(conn: Connection, queue_id: str, now: dt.datetime, scan: int = EXPIRING_SCAN) -> Expiring:
    """How many of the queue's held records will expire before their forecast release if the
    queue runs from ``now`` on at the settings in force."""
    outlook = read_outlook(conn, queue_id, now)
    blocks = executions_sql.pending_blocks(conn, queue_id, scan + 1)
    complete = len(blocks) <= scan
    blocks = blocks[:scan]
    if outlook is None or not blocks:
        return Expiring(0, 0, True, None, now)
    releases = outlook.releases(range(1, len(blocks) + 1), max(blocks))
    count = sum(1 for release, ends in zip(releases, blocks, strict=True) if release is None or release > ends)
    return Expiring(count, len(blocks), complete, min(blocks), now)


def refresh_expiring(conn: Connection, queue_id: str, now: dt.datetime, scan: int = EXPIRING_SCAN) -> Expiring:
    """Count :func:`expiring` and keep it on the queue row, where the status views read it."""
    found = expiring(conn, queue_id, now, scan)
    queues_sql.save_expiring(conn, queue_id, found.count, found.complete, found.first_end, now)
    return found
