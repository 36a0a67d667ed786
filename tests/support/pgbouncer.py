"""A real PgBouncer (Debian's ``pgbouncer`` package) in front of the test PostgreSQL.

Started with the few settings a listener needs and otherwise PgBouncer's defaults (session
pooling); as root it drops to ``nobody`` (PgBouncer refuses to run as root). Stopped and its
folder removed when the block exits.
"""

from __future__ import annotations

import os
import pwd
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


def _run_as(host: str) -> str:
    """Who PgBouncer runs as under root (it refuses root): the owner of a socket folder it
    must reach (the embedded server's is private to its user), else ``nobody``."""
    if host.startswith("/"):
        owner = pwd.getpwuid(os.stat(host).st_uid).pw_name
        if owner != "root":
            return owner
    return "nobody"


@contextmanager
def running_pgbouncer(upstream_url: str, pool_mode: str = "session") -> Iterator[str]:
    """PgBouncer on a free loopback port forwarding every database to ``upstream_url``'s
    server; yields ``upstream_url`` with host and port replaced by PgBouncer's."""
    binary = debian_binary("pgbouncer", package="pgbouncer")
    upstream = sa.engine.make_url(libpq_url(upstream_url))
    # The embedded server is reached through its socket folder (?host=/path), not TCP: a
    # trial without THROTTLED_TEST_DATABASE_URL had PgBouncer dial 127.0.0.1:5432 instead.
    socket_dir = upstream.query.get("host")
    host = upstream.host or (socket_dir if isinstance(socket_dir, str) else None) or "127.0.0.1"
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="thr-pgb-"))
    folder.chmod(0o777)  # PgBouncer runs as nobody: it writes its log and pid file here
    (folder / "users.txt").write_text(f'"{upstream.username or "postgres"}" ""\n')
    ini = folder / "pgbouncer.ini"
    ini.write_text("\n".join([
        "[databases]",
        f"* = host={host} port={upstream.port or 5432}",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1", f"listen_port = {port}", "unix_socket_dir =",
        "auth_type = trust", f"auth_file = {folder / 'users.txt'}", f"pool_mode = {pool_mode}",
        f"logfile = {folder / 'pgbouncer.log'}", f"pidfile = {folder / 'pgbouncer.pid'}", "",
    ]))
    argv = [binary, str(ini)] + (["-u", _run_as(host)] if os.geteuid() == 0 else [])
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    log = folder / "pgbouncer.log"
    try:
        wait_for_port(port, process, "pgbouncer", lambda: log.read_text() if log.exists() else "")
        pooled = upstream.set(host="127.0.0.1", port=port).difference_update_query(["host"])
        yield pooled.render_as_string(hide_password=False)
    finally:
        stop(process)
        shutil.rmtree(folder, ignore_errors=True)
