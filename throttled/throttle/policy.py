"""What a queue may do now — pure: its effective settings and what blocks it.

Effective settings are the step's (stored on the queue row, last webhook wins) with an
operator override on top (``throttle_configs``: any field it sets wins). A queue is blocked
while paused, on hold, or outside its release window; a draining queue ignores all of that
and its rate.
"""

from __future__ import annotations

import datetime as dt

from throttled.db.queues import ConfigRow, QueueRow
from throttled.ingest.inputs import StepSettings
from throttled.throttle.release_window import ReleaseWindow

#: A paused queue's job looks again this often (resume also wakes it at once).
PAUSED_RECHECK = dt.timedelta(hours=1)
#: A queue whose portal cannot be called (not installed, revoked) looks again this often;
#: an install wakes it at once.
PORTAL_RECHECK = dt.timedelta(minutes=10)


def days_mask(days: frozenset[int]) -> int:
    """Weekdays (0 = Monday) as the bitmask stored in ``queues.release_days``."""
    return sum(1 << d for d in days)


def window_of(queue: QueueRow) -> ReleaseWindow | None:
    """The queue's stored release window, if it has one."""
    if queue.release_days is None:
        return None
    days = frozenset(d for d in range(7) if queue.release_days & (1 << d))
    return ReleaseWindow(days, queue.release_start_minute, queue.release_end_minute, queue.time_zone or "UTC")


def effective_settings(queue: QueueRow, override: ConfigRow | None) -> StepSettings:
    """The queue's settings with the operator's override applied field by field."""
    settings = StepSettings(queue.max_throughput, queue.time_period, queue.time_unit, queue.mode, window_of(queue))
    if override is None:
        return settings
    if override.max_throughput is not None:
        settings = StepSettings(override.max_throughput, override.time_period, override.time_unit,
                                settings.mode, settings.window)
    if override.mode is not None:
        settings = StepSettings(settings.max_throughput, settings.time_period, settings.time_unit,
                                override.mode, settings.window)
    return settings


def blocked_until(
    queue: QueueRow, window: ReleaseWindow | None, now: dt.datetime,
    portal: tuple[str, dt.datetime | None] | None = ("active", None),
) -> dt.datetime | None:
    """When releasing may next happen if it may not now; ``None`` when it may.

    ``portal`` is ``(status, rate_limited_until)`` of the queue's portal, ``None`` if it
    never installed. A portal that cannot be called holds every queue of it (drain too):
    not installed or not active → look again after :data:`PORTAL_RECHECK`; HubSpot's daily
    limit → when it resets. Paused: after :data:`PAUSED_RECHECK`. On hold: when the hold
    ends. Outside the release window: when it next opens. Draining ignores the rest.
    """
    if portal is None or portal[0] != "active":
        return now + PORTAL_RECHECK
    if portal[1] is not None and portal[1] > now:
        return portal[1]
    if queue.state == "draining":
        return None
    if queue.state == "paused":
        return now + PAUSED_RECHECK
    if queue.state == "on_hold" and queue.on_hold_until is not None and queue.on_hold_until > now:
        return queue.on_hold_until
    if window is not None and not window.is_open(now):
        return window.next_open(now)
    return None
