"""An in-memory sliding-window limit for the edge's costly routes — pure, no I/O.

Used for the OAuth callback: each one that passes the state checks makes a code exchange
with HubSpot carrying the client secret, so a flood of them must not become a flood there.
Per daemon, not shared: it bounds what one process sends (the database coordinates the
throttles, not this).
"""

from __future__ import annotations

from collections import deque


class SlidingWindowLimit:
    """At most ``limit`` admissions in any window of ``period_s`` seconds.

    Times are seconds from one monotonic source (``trio.current_time()``); memory is
    ``limit`` floats.
    """

    def __init__(self, limit: int, period_s: float) -> None:
        if limit < 1 or period_s <= 0:
            raise ValueError("limit must be at least 1 and period_s positive")
        self.limit = limit
        self.period_s = period_s
        self._admitted: deque[float] = deque()

    def admit(self, now_s: float) -> bool:
        """Admit one event at ``now_s`` if fewer than ``limit`` lie in ``(now_s - period_s, now_s]``."""
        while self._admitted and self._admitted[0] <= now_s - self.period_s:
            self._admitted.popleft()
        if len(self._admitted) >= self.limit:
            return False
        self._admitted.append(now_s)
        return True

    def retry_after_s(self, now_s: float) -> float:
        """Seconds until :meth:`admit` would next succeed (0 if it would now)."""
        if len(self._admitted) < self.limit:
            return 0.0
        return max(0.0, self._admitted[0] + self.period_s - now_s)
