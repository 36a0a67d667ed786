"""The one wait helper of the suite: poll a condition until it holds, or fail with a message.

Every assertion on state written asynchronously (a row the portal sender records after the
next batch went out, a hold, a counter) waits for it through :func:`wait_until`, with a
deadline. Under ``MockClock`` the step is virtual time, so keep it coarse there.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

T = TypeVar("T")


class WaitTimedOut(AssertionError):
    """The condition did not hold within the deadline; the message says what was awaited
    and the last value seen."""


async def wait_until(
    check: Callable[[], T | Awaitable[T]], *, timeout_s: float = 15.0, step_s: float = 0.05, what: str = "",
) -> T:
    """Call ``check()`` (sync, or async and awaited) every ``step_s`` seconds until it returns
    something truthy, and return that.

    Args:
        check: the condition; its truthy result is returned.
        timeout_s: deadline, seconds of trio time (virtual under ``MockClock``).
        step_s: seconds between checks.
        what: what is awaited, for the failure message (default: the check's name).
    Raises:
        WaitTimedOut: the deadline passed; names ``what`` and the last value.
    """
    last: object = None
    try:
        with trio.fail_after(timeout_s):
            while True:
                value = check()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return value  # type: ignore[return-value]
                last = value
                await trio.sleep(step_s)
    except trio.TooSlowError:
        name = what or getattr(check, "__name__", "condition")
        raise WaitTimedOut(f"waited {timeout_s:g} s for {name}; last value: {last!r}") from None
