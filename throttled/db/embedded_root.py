"""Running the embedded PostgreSQL (``pgserver`` 0.1.4, pinned) as root without touching
anything outside our data folder.

As root, pgserver runs the server as a system user named ``pgserver`` and, so that user can
reach its files, adds ``g+rx,o+rx`` to every parent of the data folder *and* of its own
binaries — which live in the virtualenv, so ``git clone … ~/throttled && make demo`` as root
made ``/root`` world-readable. It also creates that user with ``useradd -s /bin/bash``: a
login shell. Read in ``pgserver/postgres_server.py`` (``ensure_pgdata_inited``) and
``pgserver/utils.py`` (``ensure_prefix_permissions``, ``ensure_user_exists``); re-read both
before lifting the pin.

What we do instead, before pgserver runs:

- its binaries are copied into ``<data folder>/pgserver-<version>`` and pgserver is pointed
  there, so the only binary tree it opens up is one of ours;
- every parent of the data folder must already be readable and traversable by others
  (``/var/lib`` is): otherwise we refuse with a message naming the folder, rather than let
  pgserver change its mode;
- the ``pgserver`` user is created by us as a system user with no login shell (and an
  existing one with a login shell gets ``/usr/sbin/nologin``: pgserver runs its commands
  through ``setuid``, never a shell).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from importlib import metadata
from pathlib import Path

import structlog

log = structlog.get_logger("throttled.db.embedded")

#: The user pgserver runs PostgreSQL as when started by root (hard-coded in pgserver).
SYSTEM_USER = "pgserver"
NO_LOGIN = "/usr/sbin/nologin"
USERADD, USERMOD = "/usr/sbin/useradd", "/usr/sbin/usermod"  # Debian's passwd package
#: Bytes of a unix socket path Linux accepts (``sun_path`` is 108, with its NUL).
MAX_SOCKET_PATH = 107
_OTHERS_RX = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH


class UnsafeDataFolder(RuntimeError):
    """The data folder sits under a directory other users cannot enter; as root, starting
    the embedded server there would need that directory's mode changed."""


def closed_parents(folder: Path) -> list[Path]:
    """Parents of ``folder`` (absolute, up to ``/``) lacking ``g+rx`` or ``o+rx``.

    Args:
        folder: the data folder (it need not exist yet; missing parents are skipped, since
            we create them with mode 0755).
    Returns:
        the closed parents, nearest first; empty when pgserver would change none of them.
    """
    closed = []
    for parent in folder.absolute().parents:
        try:
            mode = parent.stat().st_mode
        except FileNotFoundError:
            continue
        if mode & _OTHERS_RX != _OTHERS_RX:
            closed.append(parent)
    return closed


def prepare_as_root(data_folder: Path, pgdata: Path) -> None:
    """Make pgserver's root start change nothing outside ``data_folder``.

    Args:
        data_folder: our data folder (``THROTTLED_DATA_DIR``); created if missing.
        pgdata: the cluster's folder inside it (its unix socket is created there).
    Raises:
        UnsafeDataFolder: a parent of ``data_folder`` is closed to other users, or ``pgdata``
            is too long a path for a unix socket (pgserver would then open up a folder
            under ``/run/user/0`` for it).
        OSError, subprocess.CalledProcessError: copying the binaries or adding the user failed.
    """
    socket = pgdata.absolute() / ".s.PGSQL.5432"
    if len(os.fsencode(socket)) > MAX_SOCKET_PATH:
        raise UnsafeDataFolder(f"embedded PostgreSQL as root needs a shorter data folder path: {socket} is "
                               f"over {MAX_SOCKET_PATH} bytes, the limit of a unix socket path")
    closed = closed_parents(data_folder)
    if closed:
        raise UnsafeDataFolder(
            f"embedded PostgreSQL as root runs as user {SYSTEM_USER!r}, which cannot enter "
            f"{closed[0]} (mode {stat.filemode(closed[0].stat().st_mode)}); choose a data folder "
            "(THROTTLED_DATA_DIR) whose parents others may enter, such as the default "
            "/var/lib/throttled, or set THROTTLED_DATABASE_URL")
    data_folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    _ensure_user()
    _use_binaries_in(data_folder)


def _ensure_user() -> None:
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run([USERADD, "--system", "--no-create-home", "--shell", NO_LOGIN, SYSTEM_USER],  # noqa: S603  # fixed argv
                       check=True, capture_output=True)
        log.info("embedded.user_added", user=SYSTEM_USER, shell=NO_LOGIN)
        return
    if entry.pw_shell not in (NO_LOGIN, "/bin/false", "/usr/bin/false"):
        subprocess.run([USERMOD, "--shell", NO_LOGIN, SYSTEM_USER], check=True, capture_output=True)  # noqa: S603  # fixed argv
        log.warning("embedded.user_shell_removed", user=SYSTEM_USER, was=entry.pw_shell, now=NO_LOGIN)


def _use_binaries_in(data_folder: Path) -> None:
    """Copy pgserver's binaries (``pginstall``: bin, lib, share, 34 MB; and the wheel's
    ``pgserver.libs``, which the binaries find through the RPATH ``$ORIGIN/../../../pgserver.libs``)
    once per pgserver version, in the wheel's layout, and point pgserver's two references there."""
    from pgserver import _commands, postgres_server

    package = Path(_commands.__file__).resolve().parent
    target = data_folder / f"pgserver-{metadata.version('pgserver')}"
    if not (target / ".complete").exists():
        staging = target.with_name(target.name + f".{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(package / "pginstall", staging / "pgserver" / "pginstall", symlinks=True)
        shutil.copytree(package.parent / "pgserver.libs", staging / "pgserver.libs", symlinks=True)
        (staging / ".complete").touch()
        try:
            staging.rename(target)
        except OSError:  # another process finished the copy first
            shutil.rmtree(staging, ignore_errors=True)
            if not (target / ".complete").exists():
                raise
    _commands.POSTGRES_BIN_PATH = target / "pgserver" / "pginstall" / "bin"
    # postgres_server imported the name (``from ._commands import POSTGRES_BIN_PATH``).
    setattr(postgres_server, "POSTGRES_BIN_PATH", _commands.POSTGRES_BIN_PATH)  # noqa: B010
