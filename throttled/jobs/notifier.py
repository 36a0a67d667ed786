"""One LISTEN connection per daemon, shared by everyone who waits for a NOTIFY (the
scheduler for new jobs, the config cache for overrides) — as River's notifier does.

:class:`Notifier` gathers the subscriptions and runs :func:`listen` once for all channels.

A sync psycopg connection waits in a worker thread with a short timeout (≤ 1 s), so a
cancelled wait frees its thread quickly (stack notes). When the connection drops, it
reconnects with backoff; meanwhile the scheduler's polling covers the gap, so a lost
notification delays a job by at most the poll interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import psycopg
import structlog
import trio

from throttled.db.engine import libpq_url

log = structlog.get_logger("throttled.jobs.notifier")

_WAIT_S = 0.5
_MAX_BACKOFF_S = 10.0


async def listen(url: str, channels: Mapping[str, Callable[[str | None], None]], *,
                 task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Call ``channels[name](payload)`` (in trio) for every NOTIFY on a channel, forever.

    After a reconnect every callback is called once with ``None`` (something may have been
    missed). Reports started once the first LISTEN is in place (or has failed once:
    polling covers). Never raises on connection loss; cancel it to stop.
    """
    limiter = trio.CapacityLimiter(1)  # its own thread, outside the pool's limiter
    backoff = 0.5
    started = False
    lost = False  # a connection was lost: say so when it is back
    while True:
        conn = None
        try:
            conn = await trio.to_thread.run_sync(_connect, libpq_url(url), list(channels), limiter=limiter)
            backoff = 0.5
            if lost:
                log.info("listener.reconnected", channels=sorted(channels))
                lost = False
            if not started:
                task_status.started()
                started = True
            while True:
                for channel, payload in await trio.to_thread.run_sync(_wait, conn, limiter=limiter):
                    channels[channel](payload or None)
        except (psycopg.Error, OSError) as exc:
            log.warning("listener.disconnected", error=type(exc).__name__, retry_in_s=backoff)
            lost = True
            if not started:
                task_status.started()
                started = True
            for callback in channels.values():
                callback(None)  # something may have been missed: look again
            await trio.sleep(backoff)
            backoff = min(_MAX_BACKOFF_S, backoff * 2)
        finally:
            if conn is not None:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(conn.close, limiter=limiter)


def _connect(conninfo: str, channels: list[str]) -> psycopg.Connection:
    conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    for channel in channels:
        conn.execute(f"LISTEN {channel}")  # channel names are our constants, not input
    return conn


def _wait(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Block up to ``_WAIT_S`` for notifications; returns ``(channel, payload)`` pairs."""
    # stop_after=1: return at the first one (more queued ones come on the next call at once)
    return [(n.channel, n.payload) for n in conn.notifies(timeout=_WAIT_S, stop_after=1)]


class Notifier:
    """The daemon's one LISTEN connection: :meth:`subscribe` every channel first, then start
    :meth:`run` (before the subscribers need it).

    Args:
        url: the database URL.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._callbacks: dict[str, list[Callable[[str | None], None]]] = {}
        self._running = False

    def subscribe(self, channel: str, callback: Callable[[str | None], None]) -> None:
        """Call ``callback(payload)`` for every NOTIFY on ``channel`` (and with ``None`` after a
        reconnect: something may have been missed).

        Raises:
            RuntimeError: the notifier is already running (its LISTENs are in place).
        """
        if self._running:
            raise RuntimeError("subscribe before Notifier.run starts")
        self._callbacks.setdefault(channel, []).append(callback)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on every subscribed channel until cancelled (see :func:`listen`)."""
        self._running = True
        await listen(self.url, {channel: self._fan_out(callbacks) for channel, callbacks in self._callbacks.items()},
                     task_status=task_status)

    @staticmethod
    def _fan_out(callbacks: list[Callable[[str | None], None]]) -> Callable[[str | None], None]:
        def call_all(payload: str | None) -> None:
            for callback in callbacks:
                callback(payload)
        return call_all
