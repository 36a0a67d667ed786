"""A PostgreSQL cluster of the reliability suite's own, so it can be stopped, crashed and
restarted without touching the machine's server that the rest of the tests share.

The binaries are the machine's (``/usr/lib/postgresql/<version>/bin``, Debian's layout), or
else those bundled in the ``pgserver`` wheel. ``initdb`` refuses to run as root, so as root
every PostgreSQL tool runs as the ``postgres`` user (``runuser``), on a data directory owned
by it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from throttled.testing import free_port


def _bin_dir() -> Path:
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if system:
        return system[-1].parent
    import pgserver  # the embedded server's wheel carries a full installation

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


class PostgresCluster:
    """A throwaway cluster on 127.0.0.1:``port``, trust auth, user ``postgres``.

    ``stop(mode)``/``start()``/``restart(mode)`` use ``pg_ctl`` with its shutdown modes:
    ``fast`` (disconnect clients, clean shutdown) and ``immediate`` (no shutdown: crash
    recovery at the next start). Raises :class:`subprocess.CalledProcessError` with the
    server log's tail if a tool fails.
    """

    def __init__(self, *, standby_of: PostgresCluster | None = None, settings: dict[str, str] | None = None) -> None:
        """A new cluster (``initdb``), or with ``standby_of`` a streaming standby of that
        running primary (``pg_basebackup -R``: it follows the primary until promoted).
        ``settings``: server settings given at every start (``-c name=value``)."""
        self.bin = _bin_dir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="throttled-reliability-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.settings = dict(settings or {})
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        if standby_of is None:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        else:
            self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(standby_of.port), "-U", "postgres",
                      "-D", str(self.data), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast")

    @property
    def url(self) -> str:
        """URL of the ``postgres`` database (create test databases from here)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start and wait until it accepts connections (crash recovery included)."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off"
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop in ``mode``: ``smart``, ``fast`` or ``immediate``."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def promote(self) -> None:
        """A standby becomes a primary (``pg_ctl promote``), waiting until it accepts writes."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "promote")

    def restart(self, mode: str) -> None:
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        """Stop (immediately) if running and delete the files."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        command = [str(self.bin / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if check and done.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr + tail)
