"""Databases for the demo, tests and benchmarks: the server to use, and a scratch database on it."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

import psycopg
import sqlalchemy as sa

from throttled.db.engine import libpq_url


def server_url() -> str:
    """``THROTTLED_DATABASE_URL``, else the embedded PostgreSQL (started if needed, in
    ``THROTTLED_DATA_DIR`` when set)."""
    url = os.environ.get("THROTTLED_DATABASE_URL")
    if url:
        return url
    from throttled.db.embedded import start_embedded

    data_dir = os.environ.get("THROTTLED_DATA_DIR")
    return start_embedded(Path(data_dir) if data_dir else None)


def scratch_database(server: str) -> tuple[str, Callable[[], None]]:
    """Create ``throttled_demo_<random>`` on ``server``; return its URL and a function that
    drops it.

    If the role may not create databases, the given database is used as it is (callers use
    random ids, so nothing collides with other data) and the drop does nothing.
    """
    admin = libpq_url(server)
    name = f"throttled_demo_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        return server, lambda: None

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return sa.engine.make_url(admin).set(database=name).render_as_string(hide_password=False), drop
