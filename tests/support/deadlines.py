"""Every test has a deadline, and an interrupted run leaves nothing behind (a pytest plugin).

- Each test gets a deadline in *real* seconds: ``@pytest.mark.deadline(s)`` or the default of
  its folder. A trio test runs beside a watchdog that waits in a thread (so virtual time
  under ``MockClock`` does not count): past the deadline it raises :class:`DeadlineExceeded`,
  which cancels the test — its ``finally`` blocks run, daemons are stopped — and fails it
  with a message naming the deadline.
- Behind that, pytest-timeout stops any test (sync ones too, or a wedged event loop)
  :data:`BACKSTOP_S` seconds later.
- SIGTERM or SIGINT to pytest cancels the running trio test from inside trio (its
  ``finally`` blocks run: daemons stopped), then stops the session as Ctrl-C does, so
  fixtures tear down (the reliability suite's PostgreSQL cluster is removed). A second
  signal stops at once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Awaitable, Callable
from inspect import iscoroutinefunction
from pathlib import Path
from typing import Any

import pytest
import trio

#: Default deadline per test folder, real seconds (the full reliability run is about 3× longer).
_FULL = os.environ.get("THROTTLED_RELIABILITY", "").lower() == "full"
FOLDER_DEADLINES_S = {"unit": 60.0, "integration": 120.0, "e2e": 120.0, "reliability": 1200.0 if _FULL else 420.0}
DEFAULT_DEADLINE_S = 120.0
#: pytest-timeout stops a test this long after its own deadline (last resort).
BACKSTOP_S = 60.0


class DeadlineExceeded(AssertionError):
    """The test ran past its deadline (real time)."""


def deadline_of(item: pytest.Item) -> float:
    """The test's deadline, real seconds: its ``deadline`` marker, else its folder's default."""
    marker = item.get_closest_marker("deadline")
    if marker is not None:
        return float(marker.args[0])
    parts = item.path.parts
    for folder, seconds in FOLDER_DEADLINES_S.items():
        if folder in parts:
            return seconds
    return DEFAULT_DEADLINE_S


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deadline(seconds): fail the test after this many real seconds")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)


@pytest.hookimpl(trylast=True)  # after pytest-trio has marked the async tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        seconds = deadline_of(item)
        item.add_marker(pytest.mark.timeout(seconds + BACKSTOP_S))
        if item.get_closest_marker("trio") is not None and iscoroutinefunction(getattr(item, "obj", None)):
            # pytest-trio uses the first ``trio`` marker's ``run``: ours goes first.
            item.add_marker(pytest.mark.trio(run=_run_with_deadline(item.nodeid, seconds)), append=False)


def _run_with_deadline(nodeid: str, seconds: float) -> Callable[..., Any]:
    """A ``trio.run`` for pytest-trio that runs the test beside a real-time watchdog, and
    that an interrupt (SIGINT/SIGTERM) cancels cleanly."""

    def run(async_fn: Callable[[], Awaitable[Any]], *, clock: Any = None, instruments: Any = ()) -> Any:
        return trio.run(_main, async_fn, nodeid, seconds, clock=clock, instruments=instruments)

    return run


async def _main(async_fn: Callable[[], Awaitable[Any]], nodeid: str, seconds: float) -> Any:
    finished = threading.Event()
    interrupted = False
    token = trio.lowlevel.current_trio_token()
    result = None
    try:
        async with trio.open_nursery() as nursery:

            def interrupt() -> None:
                nonlocal interrupted
                interrupted = True
                nursery.cancel_scope.cancel()

            _RUNNING.append(lambda: token.run_sync_soon(interrupt))
            nursery.start_soon(_watchdog, finished, nodeid, seconds)
            try:
                result = await async_fn()
            finally:
                _RUNNING.pop()
                finished.set()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1 and not interrupted:  # the test's own error, not a group of one
            raise group.exceptions[0] from None
        if not interrupted:
            raise
    if interrupted:  # cancelled and cleaned up: now stop the session, as pytest does on Ctrl-C
        raise KeyboardInterrupt(f"{nodeid}: interrupted; the test was cancelled and its clean-up ran")
    return result


async def _watchdog(finished: threading.Event, nodeid: str, seconds: float) -> None:
    if not await trio.to_thread.run_sync(finished.wait, seconds, abandon_on_cancel=True):
        raise DeadlineExceeded(f"{nodeid} ran past its deadline of {seconds:g} s (real time) and was cancelled; "
                               f"where each task waited:\n{_task_dump()}")


_TRIO_DIR = str(Path(trio.__file__).parent)


def _task_dump(limit: int = 60) -> str:
    """One line per trio task: where its coroutine chain is suspended (innermost frame of
    our code or the library's), so a hang names the wait that never ended."""
    lines: list[str] = []
    stack = [trio.lowlevel.current_root_task()]
    while stack and len(lines) < limit:
        task = stack.pop()
        frames, coro = [], task.coro
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None and _TRIO_DIR not in frame.f_code.co_filename:
                frames.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
        lines.append(f"  {task.name}: {' > '.join(frames[-3:])}")
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return "\n".join(lines)


#: How to interrupt the trio test running now (at most one), for the signal handler.
_RUNNING: list[Callable[[], None]] = []


def _interrupt(signum: int, frame: object) -> None:
    # A KeyboardInterrupt raised wherever the signal lands can be swallowed by a server task
    # or end up as one failure in an exception group, and the run goes on. Instead, cancel
    # the running trio test from inside trio (run_sync_soon is signal-safe): its finally
    # blocks stop daemons, then KeyboardInterrupt stops the session and fixtures tear down.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second signal stops at once
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if _RUNNING:
        _RUNNING[-1]()
    else:
        raise KeyboardInterrupt
