"""How long each new enrollment is held, or that it is refused — decided in the group commit.

For each queue of a batch, under the queue's row lock (``upsert_queues`` took it): read its
outlook (``throttle/outlook.py``), place each new record behind the pending ones of the same
or a higher priority (and the batch's earlier ones), forecast its release, and choose the
block (``throttle/block_length.py``): long enough for the forecast plus a margin, or
``None`` when no block up to the longest covers it — because of the queue, or because its
"release no earlier than" lies past the longest block (two reasons the customer is told
apart). A record of a higher priority than some pending ones goes ahead of them and may
push them past their blocks: the queues where that happened are returned for a check.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from throttled.ingest.payload import Enrollment
from throttled.throttle.block_length import BlockLimits, block_for, horizon
from throttled.throttle.outlook import read_outlooks

#: Why a record is refused: its queue is too long, or it asks to wait too long.
QUEUE_TOO_LONG, RELEASE_AFTER_TOO_LATE = "queue_too_long", "release_after_too_late"


@dataclass(frozen=True, slots=True)
class Hold:
    """The answer for one new enrollment: held for ``block``, or refused when ``block`` is
    ``None`` (``reason`` says why). ``release`` is the forecast release (aware UTC; ``None``
    past the horizon)."""

    block: dt.timedelta | None
    release: dt.datetime | None
    reason: str | None = None
    position: int | None = None  # its place in line on arrival (1 = next)

    @property
    def refused(self) -> bool:
        return self.block is None


@dataclass(frozen=True, slots=True)
class Plan:
    """``holds`` by callback id; ``jumped``: queues where a held record went ahead of pending
    ones of a lower priority (their forecasts moved later)."""

    holds: dict[str, Hold]
    jumped: set[str]


def plan_holds(conn: Connection, enrollments: Sequence[Enrollment], now: dt.datetime, limits: BlockLimits) -> Plan:
    """The :class:`Plan` for new ``enrollments`` (arrival order), their queue rows already
    upserted and locked in this transaction."""
    by_queue: dict[str, list[Enrollment]] = defaultdict(list)
    for e in enrollments:
        by_queue[str(e.queue_id)].append(e)
    until = now + horizon(limits)
    holds: dict[str, Hold] = {}
    jumped: set[str] = set()
    outlooks = read_outlooks(conn, list(by_queue), now)
    for queue_id, group in by_queue.items():
        outlook = outlooks.get(queue_id)
        assert outlook is not None, "the queue row was upserted in this transaction"
        positions, earlier = [], defaultdict[int, int](int)  # the batch's earlier records by priority
        for e in group:
            ahead = sum(n for p, n in earlier.items() if p >= e.priority)
            positions.append(outlook.ahead_of(e.priority) + ahead + 1)
            earlier[e.priority] += 1
        lowest_waiting = min((p for p, n in outlook.backlog.items() if n), default=None)
        for e, position, release in zip(group, positions, outlook.releases(positions, until), strict=True):
            reason = QUEUE_TOO_LONG
            if release is not None and e.not_before is not None and e.not_before > release:
                due = outlook.schedule.hours.next_open(e.not_before) if outlook.schedule.hours else e.not_before
                release, reason = (due, reason) if due <= until else (None, RELEASE_AFTER_TOO_LATE)
            wait = release - now if release is not None else None
            block = block_for(limits, wait, outlook.period)
            holds[e.callback_id] = Hold(block, release, None if block else reason, position)
            if block and lowest_waiting is not None and e.priority > lowest_waiting:
                jumped.add(queue_id)
    return Plan(holds, jumped)
