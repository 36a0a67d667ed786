"""A real PgBouncer (Debian's ``pgbouncer`` package) in front of the test PostgreSQL.

Started with the few settings a listener needs and otherwise PgBouncer's defaults (session
pooling); as root it drops to ``nobody`` (PgBouncer refuses to run as root). Stopped and its
folder removed when the block exits.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from throttled.db.engine import libpq_url
from throttled.testing import free_port


def _binary() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if found:
        return found
    message = "PgBouncer not found: apt-get install -y pgbouncer"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def running_pgbouncer(upstream_url: str, pool_mode: str = "session") -> Iterator[str]:
    """PgBouncer on a free loopback port forwarding every database to ``upstream_url``'s
    server; yields ``upstream_url`` with host and port replaced by PgBouncer's."""
    binary = _binary()
    upstream = sa.engine.make_url(libpq_url(upstream_url))
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="thr-pgb-"))
    folder.chmod(0o777)  # PgBouncer runs as nobody: it writes its log and pid file here
    (folder / "users.txt").write_text(f'"{upstream.username or "postgres"}" ""\n')
    ini = folder / "pgbouncer.ini"
    ini.write_text("\n".join([
        "[databases]",
        f"* = host={upstream.host or '127.0.0.1'} port={upstream.port or 5432}",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1", f"listen_port = {port}", "unix_socket_dir =",
        "auth_type = trust", f"auth_file = {folder / 'users.txt'}", f"pool_mode = {pool_mode}",
        f"logfile = {folder / 'pgbouncer.log'}", f"pidfile = {folder / 'pgbouncer.pid'}", "",
    ]))
    argv = [binary, str(ini)] + (["-u", "nobody"] if os.geteuid() == 0 else [])
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process, folder)
        yield upstream.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], folder: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = folder / "pgbouncer.log"
            raise AssertionError(f"pgbouncer exited {process.returncode}: {log.read_text()[-2000:] if log.exists() else ''}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("pgbouncer did not listen within 10 s")
