"""Structured logs (structlog): one event per line, JSON when not on a TTY, readable on one.

Events carry fields (``portal_id``, ``queue_id``, ``job_id``), never secrets: tokens, the
client secret and keys are never passed to a log call.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "INFO", *, json: bool | None = None) -> None:
    """Set up structlog for the process. ``json=None`` picks JSON unless stderr is a TTY."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


class OncePer:
    """Decides whether an event about ``key`` is logged now: once per ``interval_s`` seconds per
    key, remembering at most ``capacity`` keys (the oldest are forgotten), so a flood of the
    same event is one line per interval — saying how many were not logged — in bounded memory.

    Times are seconds from any monotonic source (``trio.current_time()``).
    """

    def __init__(self, interval_s: float, capacity: int = 10_000) -> None:
        self.interval_s = interval_s
        self.capacity = capacity
        self._last: dict[object, tuple[float, int]] = {}  # key -> (logged at, not logged since)

    def due(self, key: object, now_s: float) -> int | None:
        """``None`` if the event is not to be logged now; else how many events of ``key`` were
        not logged since its last line (log that count with it)."""
        last = self._last.get(key)
        if last is not None and now_s - last[0] < self.interval_s:
            self._last[key] = (last[0], last[1] + 1)
            return None
        self._last.pop(key, None)
        self._last[key] = (now_s, 0)
        if len(self._last) > self.capacity:
            del self._last[next(iter(self._last))]
        return last[1] if last is not None else 0
