"""What a queue may do now — pure: its effective settings and what blocks it.

Effective settings are the step's (stored on the queue row, last webhook wins) with an
operator override on top (``throttle_configs``: any field it sets wins) — decided here only,
for the worker and for every page or API that shows a rate. A queue is blocked while paused,
on hold, or outside its business hours; a draining queue ignores all of that and its rate.

The queue and override are read through small protocols, so this module needs no database
type (the rows of ``db/queues.py`` satisfy them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from throttled.states import PortalStatus, QueueState
from throttled.throttle.business_hours import BusinessHours
from throttled.throttle.step import StepSettings

#: A paused queue's job looks again this often (resume also wakes it at once).
PAUSED_RECHECK = dt.timedelta(hours=1)
#: A queue whose portal cannot be called (not installed, revoked) looks again this often;
#: an install wakes it at once.
PORTAL_RECHECK = dt.timedelta(minutes=10)


class SettingsFields(Protocol):
    """A throttle's settings as stored (``db.queues.QueueRow``, ``db.named_throttles.NamedThrottle``)."""

    @property
    def max_throughput(self) -> int: ...
    @property
    def time_period(self) -> int: ...
    @property
    def time_unit(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def release_days(self) -> int | None: ...
    @property
    def release_start_minute(self) -> int | None: ...
    @property
    def release_end_minute(self) -> int | None: ...
    @property
    def time_zone(self) -> str | None: ...


class QueueFields(SettingsFields, Protocol):
    """What the policy reads of a queue (``db.queues.QueueRow``)."""

    @property
    def state(self) -> str: ...
    @property
    def on_hold_until(self) -> dt.datetime | None: ...


class OverrideFields(Protocol):
    """What the policy reads of an operator override (``db.queues.ConfigRow``)."""

    @property
    def max_throughput(self) -> int | None: ...
    @property
    def time_period(self) -> int | None: ...
    @property
    def time_unit(self) -> str | None: ...
    @property
    def mode(self) -> str | None: ...


def days_mask(days: frozenset[int]) -> int:
    """Weekdays (0 = Monday) as the bitmask stored in ``queues.release_days``."""
    return sum(1 << d for d in days)


def hours_of(queue: SettingsFields) -> BusinessHours | None:
    """The stored business hours of a queue (or named throttle), if it has one."""
    if queue.release_days is None or queue.release_start_minute is None or queue.release_end_minute is None:
        return None
    days = frozenset(d for d in range(7) if queue.release_days & (1 << d))
    return BusinessHours(days, queue.release_start_minute, queue.release_end_minute, queue.time_zone or "UTC")


def step_of(stored: SettingsFields) -> StepSettings:
    """Stored settings (a named throttle's) as :class:`StepSettings`."""
    return StepSettings(stored.max_throughput, stored.time_period, stored.time_unit, stored.mode, hours_of(stored))


def stored_columns(step: StepSettings) -> dict[str, Any]:
    """``step`` as the columns that store it (``max_throughput`` … ``time_zone``; the release
    window as a weekday bitmask and local minutes, ``None`` without one)."""
    hours = step.hours
    return {"max_throughput": step.max_throughput, "time_period": step.time_period, "time_unit": step.time_unit,
            "mode": step.mode, "release_days": days_mask(hours.days) if hours else None,
            "release_start_minute": hours.start_minute if hours else None,
            "release_end_minute": hours.end_minute if hours else None,
            "time_zone": hours.time_zone if hours else None}


def overrides_rate(override: OverrideFields | None) -> bool:
    """Whether ``override`` sets the rate (all three fields come together)."""
    return override is not None and override.max_throughput is not None


def effective_settings(queue: QueueFields, override: OverrideFields | None) -> StepSettings:
    """The queue's settings with the operator's override applied field by field: its rate
    (limit, period and unit together) and its mode each win when set."""
    max_throughput, time_period, time_unit = queue.max_throughput, queue.time_period, queue.time_unit
    if override is not None and override.max_throughput is not None:
        assert override.time_period is not None and override.time_unit is not None  # a CHECK keeps them whole
        max_throughput, time_period, time_unit = override.max_throughput, override.time_period, override.time_unit
    mode = override.mode if override is not None and override.mode is not None else queue.mode
    return StepSettings(max_throughput, time_period, time_unit, mode, hours_of(queue))


def blocked_until(
    queue: QueueFields, window: BusinessHours | None, now: dt.datetime,
    portal: tuple[str, dt.datetime | None] | None = (PortalStatus.ACTIVE, None),
) -> dt.datetime | None:
    """When releasing may next happen if it may not now; ``None`` when it may.

    ``portal`` is ``(status, rate_limited_until)`` of the queue's portal, ``None`` if it
    never installed. A portal that cannot be called holds every queue of it (drain too):
    not installed or not active → look again after :data:`PORTAL_RECHECK`; HubSpot's daily
    limit → when it resets. Paused: after :data:`PAUSED_RECHECK`. On hold: when the hold
    ends. Outside the business hours: when it next opens. Draining ignores the rest.
    """
    if portal is None or portal[0] != PortalStatus.ACTIVE:
        return now + PORTAL_RECHECK
    if portal[1] is not None and portal[1] > now:
        return portal[1]
    if queue.state == QueueState.DRAINING:
        return None
    if queue.state == QueueState.PAUSED:
        return now + PAUSED_RECHECK
    if queue.state == QueueState.ON_HOLD and queue.on_hold_until is not None and queue.on_hold_until > now:
        return queue.on_hold_until
    if window is not None and not window.is_open(now):
        return window.next_open(now)
    return None
