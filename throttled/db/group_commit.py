"""Group commit: writes of one kind that many tasks need at once, done in one transaction.

The portal senders each stamp a batch before its call and record it after HubSpot's
answer. With many portals sending a few callbacks each, one transaction per batch made the
database round trips the release path's cost (issue 17); here every caller that arrives
while a write is under way joins the next one. No background task: the first caller that
finds no write running writes for everyone waiting (the leader), then hands over — a caller
waits for at most the write in progress plus its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import trio

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Group(Generic[Item, Result]):
    def __init__(self) -> None:
        self.items: list[Item] = []
        self.results: Sequence[Result] | None = None
        self.done = trio.Event()


class GroupCommit(Generic[Item, Result]):
    """Combine concurrent :meth:`submit` calls into one ``write``.

    Args:
        write: ``async write(items) -> results``, one result per item in order; it must not
            raise (a write that could not be done answers each item with its failure value).
        failed: the result each item of a group gets when its write was cancelled midway.
    """

    def __init__(self, write: Callable[[list[Item]], Awaitable[Sequence[Result]]], failed: Result) -> None:
        self._write = write
        self._failed = failed
        self._open: _Group[Item, Result] = _Group()
        self._writing = False
        self._written = trio.Event()
        self.writes = 0  # groups written (a benchmark's or a test's measure of the grouping)

    async def submit(self, item: Item) -> Result:
        """Have ``item`` written with whatever else is waiting; returns its result."""
        group = self._open
        group.items.append(item)
        index = len(group.items) - 1
        while not group.done.is_set():
            if self._writing:  # someone else's write: ours is the next one
                await self._written.wait()
            else:
                await self._write_open()
        assert group.results is not None
        return group.results[index]

    async def _write_open(self) -> None:
        group, self._open = self._open, _Group()
        self._writing = True
        try:
            group.results = await self._write(group.items)
            self.writes += 1
        finally:
            if group.results is None:  # cancelled: nobody knows whether it was written
                group.results = [self._failed] * len(group.items)
            group.done.set()
            self._writing = False
            self._written.set()
            self._written = trio.Event()
