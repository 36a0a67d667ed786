"""The embedded PostgreSQL started by root changes no directory outside our data folder.

Finding 3 of the edge review: pgserver, run as root, added ``o+rx`` to every parent of the
*virtualenv* (its binaries live there) and created a login-shell user. Here pgserver is
imported from a folder whose parent is ``0700`` (a symlink to the installed package, so its
binaries' path runs through that folder, as a venv under ``/root`` would), the server is
started for real in a subprocess that queries it, and every directory mode we can see is
compared before and after.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pgserver
import psutil
import pytest

from throttled.db.embedded_root import NO_LOGIN, SYSTEM_USER, UnsafeDataFolder, closed_parents, prepare_as_root

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="pgserver's root path runs only as root")

START_AND_QUERY = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    import psycopg
    import pgserver
    from throttled.db.embedded import start_embedded
    assert pgserver.__file__.startswith(sys.argv[1]), pgserver.__file__
    url = start_embedded(Path(sys.argv[2]), name="pg")
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        print(conn.execute("select current_user, 6 * 7").fetchone())
""")


def _modes(paths: list[Path]) -> dict[Path, str]:
    return {p: stat.filemode(p.stat().st_mode) for p in paths}


def _dirs_to_watch(locked: Path) -> list[Path]:
    installed = Path(pgserver.__file__).resolve().parent
    watched = [locked, locked / "site", *installed.parents]
    watched += [p for p in (installed / "pginstall").rglob("*") if p.is_dir() and not p.is_symlink()]
    return watched


def _stop_servers_in(folder: Path) -> None:
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(folder) in " ".join(proc.info["cmdline"] or []):
            proc.terminate()


@as_root
def test_root_start_changes_no_directory_outside_the_data_folder():
    locked = Path(tempfile.mkdtemp(prefix="thr-venv-", dir="/tmp"))  # mode 0700, like /root
    data = Path(tempfile.mkdtemp(prefix="thr-data-", dir="/tmp"))
    try:
        (locked / "site").mkdir()
        (locked / "site" / "pgserver").symlink_to(Path(pgserver.__file__).resolve().parent)
        before = _modes(_dirs_to_watch(locked))
        assert before[locked] == "drwx------"

        done = subprocess.run([sys.executable, "-c", START_AND_QUERY, str(locked / "site"), str(data)],
                              capture_output=True, text=True, timeout=90)

        assert done.returncode == 0, done.stderr[-3000:]
        assert "42" in done.stdout, done.stdout
        after = _modes(_dirs_to_watch(locked))
        changed = {str(p): (before[p], after[p]) for p in before if before[p] != after[p]}
        assert not changed, f"directory modes changed outside the data folder: {changed}"
        assert pwd.getpwnam(SYSTEM_USER).pw_shell == NO_LOGIN
    finally:
        _stop_servers_in(data)
        shutil.rmtree(locked, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)


def test_a_data_folder_under_a_closed_directory_is_refused_and_nothing_changes(tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    closed.chmod(0o700)

    with pytest.raises(UnsafeDataFolder, match=str(closed)):
        prepare_as_root(closed / "data", closed / "data" / "pg")

    assert stat.S_IMODE(closed.stat().st_mode) == 0o700
    assert not (closed / "data").exists()


def test_a_socket_path_too_long_is_refused(tmp_path):
    deep = Path("/tmp") / ("d" * 120)
    with pytest.raises(UnsafeDataFolder, match="shorter data folder path"):
        prepare_as_root(deep, deep / "pg")
    assert not deep.exists()


def test_closed_parents_names_each_parent_others_cannot_enter(tmp_path):
    outer = tmp_path / "outer"
    inner = outer / "inner"
    inner.mkdir(parents=True)
    outer.chmod(0o711)  # traversable but not readable: pgserver would still add o+r
    inner.chmod(0o755)

    assert outer in closed_parents(inner / "data")
    assert inner not in closed_parents(inner / "data")
