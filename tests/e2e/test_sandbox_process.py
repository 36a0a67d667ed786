"""The local stack with the sandbox as its own process (``local_stack(sandbox_process=True)``,
what the benchmarks measuring a daemon use): installs, releases, and leaves no process behind."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.completions import settled_completions
from throttled.testing import Step, local_stack

STEP = Step(workflow_id=9401, action_id=4, limit=10, period=1, unit="seconds")


def _sandboxes() -> set[int]:
    """Sandbox processes that are children of this test process: another suite or benchmark
    on the machine may start and stop its own meanwhile."""
    out = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", "throttled sandbox --bind"],
                         capture_output=True, text=True, check=False)
    return {int(pid) for pid in out.stdout.split()}


async def test_a_stack_with_the_sandbox_apart_releases_and_stops_it(empty_database):
    before = _sandboxes()
    async with local_stack(empty_database, sandbox_process=True) as stack:
        assert stack.sandbox_state is None  # nothing of the sandbox lives in this process
        assert _sandboxes() - before, "no sandbox process was started"
        ids = [f"ap-{stack.portal_id}-1-4-{i}" for i in range(3)]
        for callback_id in ids:
            assert (await stack.hubspot.enroll(stack.daemons[0].url, callback_id, stack.portal_id, STEP)).status_code == 200
        done = await settled_completions(stack, ids=ids, timeout_s=20)
    assert {c["callbackId"] for c in done} == set(ids)
    assert not (_sandboxes() - before), "the sandbox process outlived its stack"


async def test_a_sandbox_process_takes_no_custom_settings(empty_database):
    with pytest.raises(ValueError, match="no sandbox_config"):
        async with local_stack(empty_database, sandbox_process=True, sandbox_config={"rate_limit_max": 5}):
            pass
