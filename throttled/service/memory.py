"""Give freed heap back to the system after a flood of connections.

CPython frees a closed connection's buffers, but glibc's allocator keeps the pages: an edge
review saw RSS grow from 118 MB to 245 MB under 900 half-sent 64 KB bodies and never come
back. ``malloc_trim(0)`` (glibc; Linux) returns free pages of every arena. It costs a few
milliseconds, so it runs when the open connections fell well below their recent peak, and
otherwise once a minute (a flood inside few connections — an HTTP/2 client opening and
resetting streams — moves no connection count: a new-user trial saw 60 MB kept after one).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Protocol

import structlog
import trio

log = structlog.get_logger("throttled.memory")

#: Connections the count must have fallen from its peak for a trim.
TRIM_AFTER_DROP = 64
#: Seconds between trims when no connection count says a flood ended.
TRIM_EVERY_S = 60.0


class Peaked(Protocol):
    """What the trim watches: an open count and a peak it can reset (``ConnectionTable``)."""

    def __len__(self) -> int: ...

    def reset_peak(self) -> int: ...


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim with
        return None
    return trim


async def trim_after_floods(watched: Peaked, *, interval_s: float = 5.0,
                            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Every ``interval_s`` seconds, if ``watched``'s open count is at least
    :data:`TRIM_AFTER_DROP` below its peak since the last look — or :data:`TRIM_EVERY_S`
    passed since the last trim — ``malloc_trim(0)``. Runs until cancelled; does nothing where
    the C library has no ``malloc_trim``."""
    trim = _malloc_trim()
    task_status.started()
    if trim is None:
        return
    last = trio.current_time()
    while True:
        await trio.sleep(interval_s)
        peak = watched.reset_peak()
        after_flood = peak - len(watched) >= TRIM_AFTER_DROP
        if after_flood or trio.current_time() - last >= TRIM_EVERY_S:
            trim(0)
            last = trio.current_time()
            if after_flood:
                log.info("memory.trimmed", peak_connections=peak, open_connections=len(watched))
