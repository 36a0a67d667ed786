"""The embedded PostgreSQL used when ``THROTTLED_DATABASE_URL`` is unset (``pgserver`` wheel).

pgserver bundles PostgreSQL 16 and listens on a unix socket inside its data folder. As root
the folder is ``/var/lib/throttled``, and :mod:`throttled.db.embedded_root` first makes sure
pgserver changes nothing outside it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import platformdirs


def default_data_dir() -> Path:
    """``/var/lib/throttled`` as root, else the user's data directory (``~/.local/share/throttled``)."""
    if os.geteuid() == 0:
        return Path("/var/lib/throttled")
    return platformdirs.user_data_path("throttled")


def start_embedded(data_dir: Path | None = None, name: str = "pg", *, create: bool = True) -> str:
    """Start (or reuse) the embedded server in ``data_dir/name``; return its database URL.

    The server stops when the last process using it exits. ``create=False`` uses only a
    cluster that exists already (operator commands).
    Raises:
        RuntimeError: the server could not be started (message says where its log is), or
            as root the data folder is unsafe (:class:`~throttled.db.embedded_root.UnsafeDataFolder`).
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (services, CI); its fallback is fine.
        warnings.simplefilter("ignore")
        # Imported late: it is only needed when no URL is configured.
        from pgserver.postgres_server import get_server

    base = data_dir or default_data_dir()
    folder = base / name
    if not create and not (folder / "PG_VERSION").exists():
        raise RuntimeError(f"no embedded PostgreSQL in {folder}, and this command never creates one: set "
                           "THROTTLED_DATABASE_URL to the daemons' database (the embedded one is made by "
                           "`throttled run` or `throttled demo`)")
    if os.geteuid() == 0:
        from throttled.db.embedded_root import prepare_as_root

        prepare_as_root(base, folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = get_server(folder, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises bare subprocess/assertion errors
        raise RuntimeError(f"embedded PostgreSQL did not start in {folder} (see {folder / 'log'}): {exc}") from exc
    return server.get_uri()
