"""The suite's one virtual clock (a pytest plugin): ``autojump_clock``.

A :class:`trio.testing.MockClock` that jumps after :data:`AUTOJUMP_S` of real idleness — but
never while a database transaction is in flight. A thread running a query counts as
"blocked" to trio, so a plain autojumping clock lets virtual time run ahead of a slow query
on a loaded machine: a worker run or an acknowledgement then lands at the wrong virtual
time (measured: two scheduler and worker tests failed 1–2 of 3 reruns under load). Every
:meth:`Database.transaction` of the test holds the jump until it returns.

It overrides pytest-trio's fixture of the same name; a test asking for it runs on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from trio.testing import MockClock

from throttled.db.engine import Database

T = TypeVar("T")

#: Real seconds of idleness after which virtual time jumps to the next deadline.
AUTOJUMP_S = 0.02


@pytest.fixture
def autojump_clock(monkeypatch: pytest.MonkeyPatch) -> MockClock:
    """MockClock that autojumps, held still while any database transaction runs."""
    clock = MockClock(autojump_threshold=AUTOJUMP_S)
    transaction = Database.transaction
    in_flight = 0

    async def held_transaction(self: Database, fn: Callable[..., T], *args: Any) -> T:
        nonlocal in_flight
        in_flight += 1
        clock.autojump_threshold = math.inf
        try:
            return await transaction(self, fn, *args)
        finally:
            in_flight -= 1
            if not in_flight:
                clock.autojump_threshold = AUTOJUMP_S

    monkeypatch.setattr(Database, "transaction", held_transaction)
    return clock
