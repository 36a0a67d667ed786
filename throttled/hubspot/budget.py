"""Per-portal request budget: at most ``limit`` HubSpot calls in any ``window_s`` seconds.

HubSpot allows a public app 110 requests per rolling 10 s per installing account
(protocol notes §7); we keep under a smaller budget (default 100 per 10 s) so latency
jitter never tips us over. Every call made for a portal — completions, lookups — waits for
a slot here. A 429 or ``X-HubSpot-RateLimit-Remaining: 0`` blocks the portal for the
window HubSpot names. Times are trio time (seconds), so MockClock drives the tests.

The budget is per daemon: with several daemons, give each ``THROTTLED_PORTAL_BUDGET``
divided by their number.
"""

from __future__ import annotations

from collections import deque

import trio


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
        self._sent: dict[int, deque[float]] = {}
        self._blocked_until: dict[int, float] = {}
        self.waits = 0

    async def acquire(self, portal_id: int) -> None:
        """Wait until ``portal_id`` may make one more call, and count it."""
        while True:
            now = trio.current_time()
            ready_at = self._ready_at(portal_id, now)
            if ready_at <= now:
                self._sent.setdefault(portal_id, deque()).append(now)
                return
            self.waits += 1
            await trio.sleep_until(ready_at)

    def block(self, portal_id: int, seconds: float) -> None:
        """No call for ``portal_id`` for ``seconds`` (HubSpot said so)."""
        until = trio.current_time() + max(0.0, seconds)
        self._blocked_until[portal_id] = max(until, self._blocked_until.get(portal_id, 0.0))

    def in_window(self, portal_id: int) -> int:
        """Calls counted in the current window (for status and tests)."""
        sent = self._sent.get(portal_id)
        if not sent:
            return 0
        self._prune(portal_id, sent, trio.current_time())
        return len(sent)

    def _ready_at(self, portal_id: int, now: float) -> float:
        blocked = self._blocked_until.get(portal_id, 0.0)
        if blocked <= now:
            self._blocked_until.pop(portal_id, None)
            blocked = now
        sent = self._sent.get(portal_id)
        if not sent:
            return blocked
        self._prune(portal_id, sent, now)
        if len(sent) < self.limit:
            return blocked
        # A slot opens when the oldest call in the window leaves it.
        return max(blocked, sent[len(sent) - self.limit] + self.window_s)

    def _prune(self, portal_id: int, sent: deque[float], now: float) -> None:
        # `sent + window <= now` (not `sent <= now - window`): the same float arithmetic as
        # the ready time computed below, so a call waits exactly until a slot has opened.
        while sent and sent[0] + self.window_s <= now:
            sent.popleft()
        if not sent:
            del self._sent[portal_id]  # idle portals cost no memory
