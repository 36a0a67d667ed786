"""The suite's own safety net (``tests/support/deadlines.py``), run on small inner test files
in a separate pytest process: a test past its deadline fails with a message, in real time
even under MockClock, its ``finally`` blocks run; a SIGTERM to pytest tears everything down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CONFTEST = 'pytest_plugins = ["tests.support.deadlines"]\n'

HANGING = '''
import time
import pytest
import trio
from trio.testing import MockClock

@pytest.fixture
def autojump_clock():
    return MockClock(autojump_threshold=0)

@pytest.mark.deadline(1)
async def test_hangs(tmp_path_factory):
    try:
        await trio.sleep_forever()
    finally:
        (tmp_path_factory.getbasetemp() / "cleaned").write_text("yes")

@pytest.mark.deadline(1)
async def test_hangs_in_a_thread_under_virtual_time(autojump_clock):
    await trio.to_thread.run_sync(time.sleep, 5)

@pytest.mark.deadline(5)
async def test_virtual_time_does_not_count(autojump_clock):
    await trio.sleep(10 ** 6)
'''

INTERRUPTED = '''
import subprocess
import pytest
import trio

@pytest.fixture(scope="session")
def child():
    process = subprocess.Popen(["sleep", "300"])
    yield process
    process.kill()
    process.wait()

async def test_waits(child, tmp_path_factory):
    marker = tmp_path_factory.getbasetemp().parent / "marks"
    (marker / "child").write_text(str(child.pid))
    try:
        await trio.sleep_forever()
    finally:
        (marker / "cleaned").write_text("yes")
'''


def _inner(tmp_path: Path, source: str) -> list[str]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_inner.py").write_text(source)
    return [sys.executable, "-m", "pytest", "-q", "-p", "trio", "-o", "trio_mode=true", "-p", "no:cacheprovider",
            f"--basetemp={tmp_path / 'base'}", str(tmp_path / "test_inner.py")]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_a_test_past_its_deadline_fails_with_a_message_and_cleans_up(tmp_path):
    done = subprocess.run(_inner(tmp_path, HANGING), capture_output=True, text=True, timeout=60, env=_env(), cwd=tmp_path)
    out = done.stdout
    assert "2 failed, 1 passed" in out, out[-3000:]
    assert "test_hangs ran past its deadline of 1 s (real time)" in out
    assert "test_hangs_in_a_thread_under_virtual_time ran past its deadline of 1 s" in out
    assert (tmp_path / "base" / "cleaned").read_text() == "yes"  # the test's finally ran


def test_sigterm_to_pytest_cancels_the_test_and_tears_fixtures_down(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    process = subprocess.Popen(_inner(tmp_path, INTERRUPTED), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=_env(), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not (marks / "child").exists():
            assert time.monotonic() < deadline, "the inner test never started"
            time.sleep(0.05)
        child = int((marks / "child").read_text())
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert (marks / "cleaned").read_text() == "yes"
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # the session fixture's child process is gone
