"""Structured logs (structlog): one event per line, JSON when not on a TTY, readable on one.

Events carry fields (``portal_id``, ``queue_id``, ``job_id``), never secrets: tokens, the
client secret and keys are never passed to a log call.

Libraries that log through the standard library (trio, hypercorn, psycopg, httpx) go through
the same renderer — a traceback becomes the ``exception`` field of one line — at WARNING and
above, each message template at most once a minute with the count of those not logged (an
edge review saw trio's "accept returned EMFILE" traceback several times a second).
"""

from __future__ import annotations

import logging
import sys
import time

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
    _route_standard_logging(renderer, max(logging.WARNING, logging.getLevelName(level.upper())))


#: Seconds between two lines of the same standard-library message template.
STDLIB_INTERVAL_S = 60.0


class _OncePerTemplate(logging.Filter):
    """Lets a record through once per :data:`STDLIB_INTERVAL_S` per (logger, template), with
    ``not_logged_since`` = how many were held back since its last line."""

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self.once = OncePer(interval_s, capacity=1000)

    def filter(self, record: logging.LogRecord) -> bool:
        missed = self.once.due((record.name, str(record.msg)), time.monotonic())
        if missed is None:
            return False
        record.not_logged_since = missed
        return True


def _route_standard_logging(renderer: structlog.typing.Processor, level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name("throttled")
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name, structlog.stdlib.add_log_level,
            structlog.stdlib.ExtraAdder(allow=["not_logged_since"]),
            structlog.processors.TimeStamper(fmt="iso", utc=True), structlog.processors.format_exc_info,
        ],
    ))
    handler.addFilter(_OncePerTemplate(STDLIB_INTERVAL_S))
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "throttled"] + [handler]
    root.setLevel(level)


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
