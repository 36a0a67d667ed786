"""Run the sandbox as a trio task: ``await nursery.start(serve_sandbox, config)``.

Start-up reports a :class:`RunningSandbox` (base URL and the live state), so in-process tests
talk HTTP to ``url`` and still inspect ``state`` (completions, token calls) directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import trio

from throttled.web.hypercorn_patch import serve

from .app import create_app
from .faults import Faults
from .state import SandboxConfig, SandboxState


class RunningSandbox(NamedTuple):
    """A started sandbox: ``url`` like ``"http://127.0.0.1:41234"`` (no trailing slash)."""

    url: str
    state: SandboxState


async def serve_sandbox(
    config: SandboxConfig,
    bind: str = "127.0.0.1:0",
    *,
    clock: Callable[[], float] = time.time,
    faults: Faults | None = None,
    task_status: trio.TaskStatus[RunningSandbox] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve a fresh sandbox on ``bind`` (port 0 = a free port) until cancelled.

    ``clock()`` returns ``now`` in epoch seconds for every rule (default wall time; tests may
    pass a settable one). ``faults``: the faults in force from the start (default: none).
    Reports :class:`RunningSandbox` through ``task_status``.
    """
    state = SandboxState(config, faults)
    app = create_app(state, clock)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, app, bind)
        task_status.started(RunningSandbox(url, state))
