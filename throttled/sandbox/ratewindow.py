"""Per-portal rolling rate windows and the log of accepted requests
(``shared/docs/hubspot-protocol.md`` §7: 110 requests per 10 s per installing account).

A window holds the requests made in ``(now - interval, now]``: a request at ``t`` stops counting
at exactly ``t + interval``. :func:`max_in_window` measures a log with the same rule, so a
portal's ``max_in_window`` never exceeds ``rate_limit_max`` unless something bypassed the window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence


class RateWindows:
    """Rolling windows of ``limit`` requests per ``interval_s`` seconds, one per portal.

    ``accepted`` maps portal id -> epoch-second times of every request admitted (kept until
    :meth:`clear`, unlike the windows, which forget requests older than the interval).
    """

    def __init__(self, limit: int, interval_s: float) -> None:
        self.limit = limit
        self.interval_s = interval_s
        self.accepted: dict[int, list[float]] = {}
        self._windows: dict[int, deque[float]] = {}

    def remaining(self, portal_id: int, now: float) -> int:
        """Requests ``portal_id`` may still make at ``now`` (0 when full)."""
        return max(0, self.limit - len(self._window(portal_id, now)))

    def admit(self, portal_id: int, now: float) -> int | None:
        """Count one request at ``now``; return the remaining allowance, or None if the window is
        full (then nothing is counted)."""
        window = self._window(portal_id, now)
        if len(window) >= self.limit:
            return None
        window.append(now)
        self.accepted.setdefault(portal_id, []).append(now)
        return self.limit - len(window)

    def headers(self, remaining: int) -> dict[str, str]:
        """The rate-limit headers of an answer (§7); OAuth calls carry no daily headers."""
        return {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(round(self.interval_s * 1e3)),
            "X-HubSpot-RateLimit-Max": str(self.limit),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
        }

    def max_in_window(self) -> dict[int, int]:
        """Portal id -> the most accepted requests in any rolling window (see :func:`max_in_window`)."""
        return {portal: max_in_window(times, self.interval_s) for portal, times in self.accepted.items()}

    def clear(self) -> None:
        """Forget every window and the accepted-request log."""
        self._windows.clear()
        self.accepted.clear()

    def _window(self, portal_id: int, now: float) -> deque[float]:
        window = self._windows.setdefault(portal_id, deque())
        while window and window[0] <= now - self.interval_s:
            window.popleft()
        return window


def max_in_window(times: Sequence[float], interval_s: float) -> int:
    """Most of ``times`` (epoch seconds, any order) inside one window ``(t - interval_s, t]``.

    Same boundary as the rate window: times exactly ``interval_s`` apart are never counted
    together. Empty ``times`` give 0.
    """
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - interval_s:
            start += 1
        best = max(best, end - start + 1)
    return best
