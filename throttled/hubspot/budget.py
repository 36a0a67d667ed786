"""Per-portal request budget: at most ``limit`` HubSpot calls in any ``window_s`` seconds.

HubSpot allows a public app 110 requests per rolling 10 s per installing account
(protocol notes §7), counted when they reach HubSpot. We keep under a smaller budget
(default 100 per 10 s), and — like the throttle window — a call holds its slot from the
moment it starts until ``window_s`` after its answer arrived: HubSpot received it somewhere
in between, so calls ``limit`` apart reach HubSpot at least a window apart however slow the
network or HubSpot is. A 429 or ``X-HubSpot-RateLimit-Remaining: 0`` also blocks the portal
for the window HubSpot names. Times are trio time (seconds), so MockClock drives the tests.

The budget is per daemon: with several daemons, give each ``THROTTLED_PORTAL_BUDGET``
divided by their number.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio


@dataclass
class _Portal:
    finished: list[float] = field(default_factory=list)  # answer times still in a window, sorted
    in_flight: int = 0
    blocked_until: float = 0.0
    changed: trio.Event = field(default_factory=trio.Event)


class PortalBudget:
    """Sliding-window limiter keyed by portal id.

    Args:
        limit: calls allowed per window.
        window_s: window length, seconds.
    """

    def __init__(self, limit: int = 100, window_s: float = 10.0) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be ≥ 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._portals: dict[int, _Portal] = {}
        self.waits = 0

    @asynccontextmanager
    async def slot(self, portal_id: int) -> AsyncIterator[None]:
        """Hold one of ``portal_id``'s slots for a call; the slot stays taken until
        ``window_s`` after the block exits (the answer arrived, or the call failed)."""
        portal = await self._acquire(portal_id)
        try:
            yield
        finally:
            portal.in_flight -= 1
            bisect.insort(portal.finished, trio.current_time())
            self._wake(portal)

    def charge(self, portal_id: int) -> None:
        """Count a call made without a slot, answered now: one whose portal was known only
        from its answer (the token metadata call of an install), which HubSpot counted in
        that portal's window all the same."""
        portal = self._portals.setdefault(portal_id, _Portal())
        bisect.insort(portal.finished, trio.current_time())

    def block(self, portal_id: int, seconds: float) -> None:
        """No call for ``portal_id`` for ``seconds`` (HubSpot said so)."""
        portal = self._portals.setdefault(portal_id, _Portal())
        portal.blocked_until = max(portal.blocked_until, trio.current_time() + max(0.0, seconds))

    def in_window(self, portal_id: int) -> int:
        """Slots taken now: calls in flight plus answers less than a window old."""
        portal = self._portals.get(portal_id)
        if portal is None:
            return 0
        self._prune(portal, trio.current_time())
        return portal.in_flight + len(portal.finished)

    async def _acquire(self, portal_id: int) -> _Portal:
        while True:
            portal = self._portals.setdefault(portal_id, _Portal())
            now = trio.current_time()
            ready_at = self._ready_at(portal, now)
            if ready_at is not None and ready_at <= now:
                portal.in_flight += 1
                return portal
            self.waits += 1
            changed = portal.changed
            with trio.move_on_at(ready_at if ready_at is not None else float("inf")):
                await changed.wait()  # a call finished, or the slot's time came

    def _ready_at(self, portal: _Portal, now: float) -> float | None:
        """When a slot is free: a time, or ``None`` while calls in flight hold them all."""
        self._prune(portal, now)
        blocked = max(now, portal.blocked_until)
        taken = portal.in_flight + len(portal.finished)
        if taken < self.limit:
            return blocked
        if portal.in_flight >= self.limit:
            return None
        # A slot frees when enough of the finished calls have left the window.
        return max(blocked, portal.finished[taken - self.limit] + self.window_s)

    def _prune(self, portal: _Portal, now: float) -> None:
        # `t + window <= now` (not `t <= now - window`): the same float arithmetic as the
        # ready time above, so a caller waits exactly until a slot has opened.
        drop = 0
        while drop < len(portal.finished) and portal.finished[drop] + self.window_s <= now:
            drop += 1
        del portal.finished[:drop]

    def _wake(self, portal: _Portal) -> None:
        portal.changed.set()
        portal.changed = trio.Event()

    def forget_idle(self) -> None:
        """Drop portals with nothing in flight or in the window (memory stays bounded)."""
        now = trio.current_time()
        for portal_id, portal in list(self._portals.items()):
            self._prune(portal, now)
            if not portal.in_flight and not portal.finished and portal.blocked_until <= now:
                del self._portals[portal_id]
