"""Starting and stopping the Debian-packaged servers some tests run (nginx, PgBouncer,
Chromium): finding the binary, waiting for the port, stopping the process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def debian_binary(*names: str, package: str) -> str:
    """The first of ``names`` on PATH (or in /usr/sbin); without it the test fails under CI
    (``.ci/run`` installs ``package``) and is skipped elsewhere."""
    for name in names:
        found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
        if found:
            return found
    message = f"{names[0]} not found: apt-get install -y {package}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, logs: Callable[[], str]) -> None:
    """Wait up to 10 s for ``127.0.0.1:port`` to accept; fail with ``logs()`` if ``process`` exits."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited {process.returncode}: {logs()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not listen within 10 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 5 s."""
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
