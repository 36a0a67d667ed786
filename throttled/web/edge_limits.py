"""What a listener holds at most: open connections and request-body bytes — pure, no I/O.

An edge review found that 1,100 idle TCP connections (the daemon at 1,024 open files) made
signed webhooks time out and broke the systemd watchdog ping (no descriptor left for its
socket), and that 900 connections each sending 64,999 bytes of a 65,000-byte body grew the
heap by 130 MB. So each listener has

- a **connection cap**: at the cap a new connection first evicts the connection idle the
  longest (waiting for a request head: a kept-alive client between requests, or one that
  has sent nothing or only part of a head), so clients that are sending requests keep being
  served; only when every connection is inside a request is the new one refused (``503``);
- a **body budget**: the bytes of request bodies the listener holds at once, counted as they
  arrive after a small down payment per request (``body_budget.py``); a request that cannot
  fit is answered ``503`` + ``Retry-After``, its body unread.

The defaults come from the process's open-file limit (:func:`default_max_connections`),
raised to its hard limit at start (:func:`raise_open_file_limit`).
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass

from throttled.logs import OncePer

#: Descriptors kept free of connections: database pools, HubSpot connections, the admin
#: listener, the log, the systemd socket, the embedded server's files.
RESERVED_FDS = 256
#: Upper bound of the derived cap: past a few thousand, memory, not descriptors, is the limit.
MAX_DERIVED_CONNECTIONS = 4096
#: Default body budget: 256 bodies of the 64 KiB limit, or thousands of HubSpot's ~2 KB ones.
BODY_BUDGET_BYTES = 16 * 1024 * 1024
#: The admin listener's cap and body budget: an operator, a scraper and a few browsers.
ADMIN_MAX_CONNECTIONS, ADMIN_BODY_BUDGET_BYTES = 64, 4 * 1024 * 1024
#: Highest soft open-file limit we raise to (systemd's default hard limit is 524,288).
MAX_OPEN_FILES = 65536


def raise_open_file_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard one (at most :data:`MAX_OPEN_FILES`) — a
    server's usual first step, as systemd leaves the soft limit at 1,024 — and return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, MAX_OPEN_FILES) if hard != resource.RLIM_INFINITY else MAX_OPEN_FILES
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):  # a container may forbid it: keep what we have
            return soft
        return wanted
    return soft


def default_max_connections(open_files: int) -> int:
    """Connections a listener may hold given the process's soft ``RLIMIT_NOFILE``: three
    quarters of what :data:`RESERVED_FDS` leaves, between 32 and :data:`MAX_DERIVED_CONNECTIONS`.

    >>> default_max_connections(1024), default_max_connections(524288)
    (576, 4096)
    """
    return max(32, min(MAX_DERIVED_CONNECTIONS, (open_files - RESERVED_FDS) * 3 // 4))


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """One listener's limits: ``max_connections`` open at once, ``body_budget_bytes`` of
    request bodies admitted at once, ``max_body_bytes`` reserved for a chunked body."""

    max_connections: int
    body_budget_bytes: int = BODY_BUDGET_BYTES
    max_body_bytes: int = 64 * 1024


class _Entry:
    __slots__ = ("evict", "idle_since")

    def __init__(self, evict: Callable[[], None], idle_since: float | None) -> None:
        self.evict = evict
        self.idle_since = idle_since  # None while a request is in progress


class ConnectionTable:
    """The open connections of one listener and which of them wait for a request head.

    Keys are any hashable connection identity; times are seconds of one monotonic source.
    """

    def __init__(self, max_connections: int) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self._open: dict[object, _Entry] = {}
        self.peak = 0  # most open at once since the last :meth:`reset_peak`
        self.evicted = 0
        self.refused = 0
        self.refusals_logged = OncePer(60.0)  # this listener's refusal lines: once a minute

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, key: object, evict: Callable[[], None], now_s: float) -> bool:
        """Open ``key`` (idle from ``now_s``) if under the cap — after evicting the longest
        idle connection when at it; ``False`` (and counted as refused) when every open
        connection is inside a request. ``evict`` is called to close ``key`` if it is
        evicted later."""
        if len(self._open) >= self.max_connections and not self._evict_longest_idle():
            self.refused += 1
            return False
        self._open[key] = _Entry(evict, now_s)
        self.peak = max(self.peak, len(self._open))
        return True

    def idle(self, key: object, now_s: float) -> None:
        """``key`` now waits for a request head (evictable)."""
        entry = self._open.get(key)
        if entry is not None and entry.idle_since is None:
            entry.idle_since = now_s

    def busy(self, key: object) -> None:
        """``key`` is inside a request (not evictable)."""
        entry = self._open.get(key)
        if entry is not None:
            entry.idle_since = None

    def close(self, key: object) -> None:
        """``key`` is closed (a no-op when it is not open)."""
        self._open.pop(key, None)

    def reset_peak(self) -> int:
        """Return the peak since the last reset, and start a new one from what is open now."""
        peak, self.peak = self.peak, len(self._open)
        return peak

    def _evict_longest_idle(self) -> bool:
        idle = [(e.idle_since, k) for k, e in self._open.items() if e.idle_since is not None]
        if not idle:
            return False
        _, key = min(idle, key=lambda pair: pair[0])
        entry = self._open.pop(key)
        self.evicted += 1
        entry.evict()
        return True


class BodyBudget:
    """Bytes of request bodies admitted at once by one listener."""

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes < 1:
            raise ValueError("budget_bytes must be at least 1")
        self.budget_bytes = budget_bytes
        self.reserved = 0
        self.refused = 0

    def reserve(self, size: int) -> bool:
        """Reserve ``size`` bytes; ``False`` (counted as refused) when they do not fit.
        A body larger than the whole budget never fits."""
        if self.reserved + size > self.budget_bytes:
            self.refused += 1
            return False
        self.reserved += size
        return True

    def fits(self, size: int) -> bool:
        """Whether ``size`` more bytes would fit now (nothing reserved; a ``False`` is
        counted as refused)."""
        if self.reserved + size > self.budget_bytes:
            self.refused += 1
            return False
        return True

    def release(self, size: int) -> None:
        """Give back a reservation made by :meth:`reserve`."""
        self.reserved -= size


class Edge:
    """One listener's limits and their live state: its open connections and the body bytes
    it admitted (read by the metrics and the memory trim)."""

    def __init__(self, limits: EdgeLimits) -> None:
        self.limits = limits
        self.connections = ConnectionTable(limits.max_connections)
        self.bodies = BodyBudget(limits.body_budget_bytes)

    @classmethod
    def derived(cls, max_connections: int = 0, body_budget_bytes: int = BODY_BUDGET_BYTES,
                max_body_bytes: int = 64 * 1024) -> Edge:
        """Limits with ``max_connections`` 0 derived from this process's soft ``RLIMIT_NOFILE``."""
        if not max_connections:
            max_connections = default_max_connections(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        return cls(EdgeLimits(max_connections, body_budget_bytes, max_body_bytes))

    def numbers(self) -> dict[str, int]:
        """Counts for the metrics: open ``connections``, ``evicted`` and ``refused`` since
        start, admitted ``body_bytes`` now, ``bodies_refused`` since start."""
        return {"connections": len(self.connections), "evicted": self.connections.evicted,
                "refused": self.connections.refused, "body_bytes": self.bodies.reserved,
                "bodies_refused": self.bodies.refused}
