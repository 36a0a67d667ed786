"""Group commit (``throttled/db/group_commit.py``) without a database: writes are trio
events, the clock is trio's MockClock."""

from __future__ import annotations

import trio
import trio.testing

from throttled.db.group_commit import GroupCommit


class _Writes:
    """A write that records its groups and blocks until the test lets it finish."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.go: list[trio.Event] = []

    async def __call__(self, items: list[str]) -> list[str]:
        self.groups.append(list(items))
        go = trio.Event()
        self.go.append(go)
        await go.wait()
        return [item.upper() for item in items]


async def test_callers_arriving_during_a_write_share_the_next_one(autojump_clock):
    writes = _Writes()
    commits = GroupCommit(writes, failed="lost")
    results: dict[str, str] = {}

    async def submit(item: str) -> None:
        results[item] = await commits.submit(item)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(submit, "a")
            await trio.testing.wait_all_tasks_blocked()  # a's write is under way
            for item in "bcd":
                nursery.start_soon(submit, item)
            await trio.testing.wait_all_tasks_blocked()
            assert writes.groups == [["a"]], "b, c and d must wait for a's write, not start their own"
            writes.go[0].set()
            await trio.testing.wait_all_tasks_blocked()
            assert [sorted(group) for group in writes.groups] == [["a"], ["b", "c", "d"]]
            writes.go[1].set()
    assert results == {"a": "A", "b": "B", "c": "C", "d": "D"}
    assert commits.writes == 2


async def test_a_leader_cancelled_mid_write_fails_its_group_and_the_next_group_is_written(autojump_clock):
    writes = _Writes()
    commits = GroupCommit(writes, failed="lost")
    results: dict[str, str] = {}

    async def submit(item: str, scope: trio.CancelScope | None = None) -> None:
        if scope is None:
            results[item] = await commits.submit(item)
            return
        with scope:
            results[item] = await commits.submit(item)

    leader = trio.CancelScope()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(submit, "a", leader)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(submit, "b")
            await trio.testing.wait_all_tasks_blocked()
            leader.cancel()  # the leader's task is cancelled while its write runs
            await trio.testing.wait_all_tasks_blocked()
            assert writes.groups == [["a"], ["b"]], "b's caller must take over the writing"
            writes.go[1].set()
    assert results == {"b": "B"}, "a was cancelled: it gets no result; b is written"
