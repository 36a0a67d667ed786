"""What the customer page shows, read in one transaction per page — only the signed-in
portal's rows: its queues (``control.list_queues`` / ``show_queue``), their releases over the
last hour and day, each queue's forecast, and its named throttles.

A queue of another portal and an unknown one are the same :class:`~throttled.control.NotFound`
(the routes answer both with one 404), so a URL reveals nothing about other accounts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from throttled import control
from throttled.control import NotFound, QueueOverview
from throttled.db import executions as executions_sql
from throttled.db import named_throttles as named_sql
from throttled.db import portals as portals_sql
from throttled.db import queues as queues_sql
from throttled.db.named_throttles import NamedThrottle
from throttled.throttle.outlook import read_outlook
from throttled.throttle.queue_ids import parse_queue_id
from throttled.web.charts import per_hour

HOUR_MINUTES = 60
DAY_MINUTES = 24 * 60
#: Most partitions of one queue forecast per page (the fullest first); beyond it the
#: forecast says it looked at only some.
FORECAST_PARTITIONS = 50


@dataclass(frozen=True, slots=True)
class Forecast:
    """When the last record held now would be released, at the settings in force, if the
    queue runs from ``now`` on (``throttle/outlook.py``; later records of a higher priority,
    a pause or a HubSpot outage make it later). A queue with partitions (``partition_key``)
    is forecast per partition, each with its own window, and the latest counts.

    Attributes:
        held: pending records (in a single queue: the last one's position in line).
        last_release: the last one's forecast release (aware UTC); ``None`` when not before
            ``until``.
        until: how far the forecast looks: the longest wait a block can cover, or the last
            block's end if later.
        blocks_end: when the last block HubSpot holds for these records ends (``None``: none).
        draining: everything held goes now, whatever the rate.
        too_late: in some queue, the last record's release is forecast after the last block
            ends: records still held then go on through the workflow without a release.
        partitions: the partitions with records that were looked at (0: not partitioned).
        complete: every partition with records was looked at (at most
            :data:`FORECAST_PARTITIONS`, the fullest first).
    """

    held: int
    last_release: dt.datetime | None
    until: dt.datetime
    blocks_end: dt.datetime | None
    draining: bool = False
    too_late: bool = False
    partitions: int = 0
    complete: bool = True

    @classmethod
    def of(cls, held: int, last_release: dt.datetime | None, until: dt.datetime, blocks_end: dt.datetime | None,
           draining: bool = False) -> Forecast:
        """One queue's forecast, ``too_late`` judged from the others."""
        late = bool(held) and not draining and blocks_end is not None and (last_release is None or last_release > blocks_end)
        return cls(held, last_release, until, blocks_end, draining, late)


@dataclass(frozen=True, slots=True)
class QueueView:
    """One queue as the customer sees it.

    Attributes:
        title: the named throttle's display name, or the workflow step in words.
        named: the named throttle of a ``queue:{portal}:shared:{slug}`` queue, if one exists.
        minutes: releases per minute over the last hour (the current minute last).
        hours: releases per hour over the last day (the last 60 minutes last).
    """

    overview: QueueOverview
    title: str
    named: NamedThrottle | None
    minutes: list[int]
    hours: list[int]
    forecast: Forecast

    @property
    def queue_id(self) -> str:
        return self.overview.queue.queue_id


@dataclass(frozen=True, slots=True)
class PortalPage:
    """Everything ``GET /app`` shows. ``availability``: the portal's ``(status, held_until)``."""

    portal_id: int
    now: dt.datetime
    availability: tuple[str, dt.datetime | None] | None
    queues: list[QueueView]
    named: list[NamedThrottle]

    def queue_of(self, slug: str) -> QueueView | None:
        """The shared queue of the named throttle ``slug``, once a record has waited in it."""
        return next((v for v in self.queues if v.named is not None and v.named.slug == slug), None)


def portal_page(conn: Connection, portal_id: int, now: dt.datetime, horizon: dt.timedelta) -> PortalPage:
    """The portal's queues (with charts and forecasts) and its live named throttles at ``now``.

    Args:
        horizon: the longest forecast wait a block can cover (``block_length.horizon``).
    """
    overviews = control.list_queues(conn, portal_id, now)
    families: dict[str, list[str]] = {}
    for row in queues_sql.list_queues(conn, portal_id):  # a partition counts within its step's queue
        families.setdefault(row.parent_queue_id or row.queue_id, []).append(row.queue_id)
    history = control.release_history(conn, [q for ids in families.values() for q in ids], now, DAY_MINUTES)
    names = _names(conn, portal_id, [o.queue.queue_id for o in overviews])
    views = [_view(conn, o, families.get(o.queue.queue_id, [o.queue.queue_id]), history, names, now, horizon)
             for o in overviews]
    return PortalPage(portal_id, now, portals_sql.availability(conn, portal_id), views,
                      named_sql.list_named(conn, portal_id))


def queue_page(conn: Connection, portal_id: int, queue_id: str, now: dt.datetime, horizon: dt.timedelta) -> QueueView:
    """One queue of the portal, with every state's count and a fresh will-expire count.

    Raises:
        NotFound: no such queue, or it belongs to another portal (the same answer).
    """
    owned(conn, portal_id, queue_id)
    overview = control.show_queue(conn, queue_id, now)
    family = queues_sql.family_ids(conn, queue_id)
    history = control.release_history(conn, family, now, DAY_MINUTES)
    return _view(conn, overview, family, history, _names(conn, portal_id, [queue_id]), now, horizon)


def owned(conn: Connection, portal_id: int, queue_id: str) -> None:
    """Check that ``queue_id`` is a queue of ``portal_id``.

    Raises:
        NotFound: it is not (unknown, or another portal's).
    """
    queue = queues_sql.get_queue(conn, queue_id)
    # A partition is shown and controlled within its step's queue, never by itself.
    if queue is None or queue.portal_id != portal_id or queue.parent_queue_id is not None:
        raise NotFound("no such queue")


def forecast(conn: Connection, queue_ids: list[str], now: dt.datetime, horizon: dt.timedelta) -> Forecast:
    """The :class:`Forecast` at ``now`` (aware UTC) of a queue, given as its family: its own
    id, then its partitions' (``queues_sql.family_ids``)."""
    pending = {q: c.get("pending", 0) for q, c in executions_sql.active_counts(conn, queue_ids).items()}
    holding = sorted((q for q in queue_ids if pending.get(q)), key=lambda q: -pending[q])
    parts = [_forecast_one(conn, q, now, horizon) for q in holding[:FORECAST_PARTITIONS]]
    if len(queue_ids) == 1:
        return parts[0] if parts else Forecast.of(0, None, now + horizon, None)
    if not parts:
        return Forecast(0, None, now + horizon, None, partitions=0)
    ends = [f.blocks_end for f in parts if f.blocks_end is not None]
    releases = [f.last_release for f in parts]
    return Forecast(sum(pending.values()), None if None in releases else max(r for r in releases if r is not None),
                    max(f.until for f in parts), max(ends) if ends else None, all(f.draining for f in parts),
                    any(f.too_late for f in parts), len(parts), len(holding) <= FORECAST_PARTITIONS)


def _forecast_one(conn: Connection, queue_id: str, now: dt.datetime, horizon: dt.timedelta) -> Forecast:
    blocks_end = executions_sql.latest_pending_expiry(conn, queue_id)
    until = max(now + horizon, blocks_end or now)
    outlook = read_outlook(conn, queue_id, now)
    held = sum(outlook.backlog.values()) if outlook is not None else 0
    if outlook is None or not held:
        return Forecast.of(0, None, until, blocks_end)
    [last] = outlook.releases([held], until)
    return Forecast.of(held, last, until, blocks_end, outlook.draining)


def title_of(queue_id: str, named: NamedThrottle | None) -> str:
    """A queue's name in words: a named throttle's display name, ``Shared throttle “slug”``,
    or ``Workflow 101, step 7``; the id itself when it cannot be read."""
    try:
        parsed = parse_queue_id(queue_id)
    except ValueError:
        return queue_id
    if parsed.shared_name is not None:
        return named.display_name if named is not None else f"Shared throttle “{parsed.shared_name}”"
    lane = f", lane {parsed.index}" if parsed.index else ""
    return f"Workflow {parsed.workflow_id}, step {parsed.action_id}{lane}"


def _view(conn: Connection, o: QueueOverview, family: list[str], history: Mapping[str, list[int]],
          names: Mapping[str, NamedThrottle], now: dt.datetime, horizon: dt.timedelta) -> QueueView:
    """``o`` with its charts and forecast; ``family``: its id and its partitions' ids."""
    queue_id = o.queue.queue_id
    named = names.get(queue_id)
    per_minute = [sum(counts) for counts in zip(*(history[q] for q in family), strict=True)]
    return QueueView(o, title_of(queue_id, named), named, per_minute[-HOUR_MINUTES:], per_hour(per_minute),
                     forecast(conn, family, now, horizon))


def _names(conn: Connection, portal_id: int, queue_ids: list[str]) -> dict[str, NamedThrottle]:
    """``{queue_id: named throttle}`` for the shared queues among ``queue_ids`` that have one
    (any state: a deleted throttle's queue keeps its name while records wait)."""
    slugs: dict[tuple[int, str], str] = {}
    for queue_id in queue_ids:
        try:
            parsed = parse_queue_id(queue_id)
        except ValueError:
            continue
        if parsed.shared_name is not None and parsed.portal_id == portal_id:
            slugs[(portal_id, parsed.shared_name)] = queue_id
    found = named_sql.lookup(conn, list(slugs))
    return {queue_id: found[key] for key, queue_id in slugs.items() if key in found}
