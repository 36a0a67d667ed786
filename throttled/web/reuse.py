"""One result shared by every viewer for a moment: the admin listener's pages and scrapes.

However many browsers reload ``/admin`` or scrapers hit ``/metrics``, the daemon builds each
at most once per ``max_age_s`` and once at a time (callers that arrive while it is being
built wait for that build), so watching the daemon costs the same for 1 viewer as for 12.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class Reused(Generic[T]):
    """The last result of ``produce()``, reused for ``max_age_s`` seconds (trio time).

    Raises whatever ``produce`` raises; a failed build is not kept.
    """

    def __init__(self, produce: Callable[[], Awaitable[T]], max_age_s: float) -> None:
        self._produce = produce
        self._max_age_s = max_age_s
        self._lock = trio.Lock()
        self._value: T | None = None
        self._made_at = -float("inf")
        self.builds = 0  # how many times it was built (tests, benchmarks)

    async def get(self) -> T:
        """The shared result: fresh enough, or built now (once, for everyone waiting)."""
        async with self._lock:
            if self._value is None or trio.current_time() - self._made_at >= self._max_age_s:
                self._value = await self._produce()
                self._made_at = trio.current_time()
                self.builds += 1
            return self._value
