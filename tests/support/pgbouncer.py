"""A real PgBouncer (Debian's ``pgbouncer`` package) in front of the test PostgreSQL.

Started with the few settings a listener needs and otherwise PgBouncer's defaults (session
pooling); as root it drops to ``nobody`` (PgBouncer refuses to run as root). Stopped and its
folder removed when the block exits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from tests.support.processes import debian_binary, stop, wait_for_port
from throttled.db.engine import libpq_url
from throttled.testing import free_port


@contextmanager
def running_pgbouncer(upstream_url: str, pool_mode: str = "session") -> Iterator[str]:
    """PgBouncer on a free loopback port forwarding every database to ``upstream_url``'s
    server; yields ``upstream_url`` with host and port replaced by PgBouncer's."""
    binary = debian_binary("pgbouncer", package="pgbouncer")
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
    log = folder / "pgbouncer.log"
    try:
        wait_for_port(port, process, "pgbouncer", lambda: log.read_text() if log.exists() else "")
        yield upstream.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    finally:
        stop(process)
        shutil.rmtree(folder, ignore_errors=True)
