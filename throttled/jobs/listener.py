"""LISTEN for job NOTIFYs on a dedicated connection and wake the scheduler.

A sync psycopg connection waits in a worker thread with a short timeout (≤ 1 s), so a
cancelled wait frees its thread quickly (stack notes). When the connection drops, it
reconnects with backoff; meanwhile the scheduler's polling covers the gap, so a lost
notification delays a job by at most the poll interval.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import structlog
import trio

from throttled.db.engine import libpq_url
from throttled.db.jobs import NOTIFY_CHANNEL

log = structlog.get_logger("throttled.jobs.listener")

_WAIT_S = 0.5
_MAX_BACKOFF_S = 10.0


async def listen(url: str, on_notify: Callable[[], None], *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Call ``on_notify()`` (in trio) after every NOTIFY on the jobs channel, forever.

    Reports started once the first LISTEN is in place (or has failed once: polling
    covers). Never raises on connection loss; cancel it to stop.
    """
    limiter = trio.CapacityLimiter(1)  # its own thread, outside the pool's limiter
    backoff = 0.5
    started = False
    while True:
        conn = None
        try:
            conn = await trio.to_thread.run_sync(_connect, libpq_url(url), limiter=limiter)
            backoff = 0.5
            if not started:
                task_status.started()
                started = True
            while True:
                if await trio.to_thread.run_sync(_wait, conn, limiter=limiter):
                    on_notify()
        except (psycopg.Error, OSError) as exc:
            log.warning("listener.disconnected", error=type(exc).__name__, retry_in_s=backoff)
            if not started:
                task_status.started()
                started = True
            on_notify()  # something may have been missed; let the scheduler look
            await trio.sleep(backoff)
            backoff = min(_MAX_BACKOFF_S, backoff * 2)
        finally:
            if conn is not None:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(conn.close, limiter=limiter)


def _connect(conninfo: str) -> psycopg.Connection:
    conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
    return conn


def _wait(conn: psycopg.Connection) -> bool:
    """Block up to ``_WAIT_S`` for a notification; True if one (or more) arrived."""
    got = False
    for _ in conn.notifies(timeout=_WAIT_S, stop_after=1):
        got = True
    return got
