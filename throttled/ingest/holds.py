"""How long each new enrollment is held, or that it is refused — decided in the group commit.

For each queue of a batch, under the queue's row lock (``upsert_queues`` took it): read its
outlook (``throttle/outlook.py``), place each new record behind the pending ones of the same
or a higher priority (and the batch's earlier ones), forecast its release, and choose the
block (``throttle/block_length.py``): long enough for the forecast plus a margin, or
``None`` when no block up to the longest covers it. A record with "release no earlier
than" is forecast no earlier than that.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from throttled.ingest.payload import Enrollment
from throttled.throttle.block_length import BlockLimits, block_for, horizon
from throttled.throttle.outlook import read_outlook


@dataclass(frozen=True, slots=True)
class Hold:
    """The answer for one new enrollment: held for ``block``, or refused when ``block`` is
    ``None``. ``release`` is the forecast release (aware UTC; ``None`` past the horizon)."""

    block: dt.timedelta | None
    release: dt.datetime | None

    @property
    def refused(self) -> bool:
        return self.block is None


def plan_holds(conn: Connection, enrollments: Sequence[Enrollment], now: dt.datetime,
               limits: BlockLimits) -> dict[str, Hold]:
    """``{callback_id: Hold}`` for new ``enrollments`` (arrival order), their queue rows
    already upserted and locked in this transaction."""
    by_queue: dict[str, list[Enrollment]] = defaultdict(list)
    for e in enrollments:
        by_queue[str(e.queue_id)].append(e)
    until = now + horizon(limits)
    holds: dict[str, Hold] = {}
    for queue_id, group in by_queue.items():
        outlook = read_outlook(conn, queue_id, now)
        assert outlook is not None, "the queue row was upserted in this transaction"
        positions, earlier = [], defaultdict[int, int](int)  # the batch's earlier records by priority
        for e in group:
            ahead = sum(n for p, n in earlier.items() if p >= e.priority)
            positions.append(outlook.ahead_of(e.priority) + ahead + 1)
            earlier[e.priority] += 1
        for e, release in zip(group, outlook.releases(positions, until), strict=True):
            if release is not None and e.not_before is not None and e.not_before > release:
                due = outlook.schedule.hours.next_open(e.not_before) if outlook.schedule.hours else e.not_before
                release = due if due <= until else None
            wait = release - now if release is not None else None
            holds[e.callback_id] = Hold(block_for(limits, wait, outlook.period), release)
    return holds
