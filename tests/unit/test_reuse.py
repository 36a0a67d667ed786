"""One build shared by every viewer for a moment (``web/reuse.py``), on trio's MockClock."""

import pytest
import trio
from trio.testing import MockClock

from throttled.web.reuse import Reused


def test_twelve_viewers_cost_one_build_and_a_stale_result_is_built_again():
    async def main() -> tuple[list[int], int]:
        builds = 0

        async def build() -> int:
            nonlocal builds
            builds += 1
            await trio.sleep(0.5)  # a slow page: everyone arriving meanwhile waits for this one
            return builds

        page = Reused(build, max_age_s=2.0)
        got: list[int] = []

        async def viewer() -> None:
            got.append(await page.get())

        async with trio.open_nursery() as nursery:
            for _ in range(12):
                nursery.start_soon(viewer)
        await trio.sleep(1.0)
        got.append(await page.get())  # 1.5 s after the build: still fresh
        await trio.sleep(1.0)
        got.append(await page.get())  # 2.5 s: built again
        return got, page.builds

    got, builds = trio.run(main, clock=MockClock(autojump_threshold=0))
    assert got == [1] * 13 + [2] and builds == 2


def test_a_failed_build_is_not_kept():
    async def main() -> int:
        calls = 0

        async def build() -> int:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("database unavailable")
            return calls

        page = Reused(build, max_age_s=60.0)
        with pytest.raises(RuntimeError):
            await page.get()
        return await page.get()

    assert trio.run(main, clock=MockClock(autojump_threshold=0)) == 2
