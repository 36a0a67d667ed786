"""Serve an ASGI app with Hypercorn's trio worker; shared by the daemon and the sandbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve


def hypercorn_config(bind: str, *, keep_alive_s: float = 75.0, read_timeout_s: float = 30.0) -> Config:
    """Hypercorn settings for one plain-HTTP listener.

    Args:
        bind: ``host:port``; port 0 picks a free port.
        keep_alive_s: idle keep-alive timeout in seconds.
        read_timeout_s: seconds a client may take to send a request (slow clients are cut).
    """
    config = Config()
    config.bind = [bind]
    config.keep_alive_timeout = keep_alive_s
    config.read_timeout = read_timeout_s
    config.accesslog = None
    config.errorlog = None  # our own structured logs report errors
    config.graceful_timeout = 5.0
    # HubSpot can open many connections at once; the default backlog of 100 refuses a burst.
    config.backlog = 2048
    return config


async def serve(
    app,
    bind: str,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``bind`` until cancelled or ``shutdown_trigger`` returns.

    Reports the bound base URL (e.g. ``"http://127.0.0.1:41234"``) through ``task_status``,
    so ``await nursery.start(serve, app, "127.0.0.1:0")`` returns the real port.
    """
    config = hypercorn_config(bind)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(hypercorn_serve, app, config, shutdown_trigger=shutdown_trigger)
        )
        task_status.started(binds[0])
