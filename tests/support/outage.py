"""A real database outage for tests: the test database refuses new connections and its open
ones are cut, until the block ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import sqlalchemy as sa

from throttled.db.engine import libpq_url


@contextmanager
def database_down(url: str) -> Iterator[None]:
    """Refuse new connections to ``url``'s database and cut the open ones; restore on exit
    (through the server's ``postgres`` database, which stays up)."""
    parsed = sa.engine.make_url(libpq_url(url))
    admin = parsed.set(database="postgres").render_as_string(hide_password=False)
    name = parsed.database
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            yield
        finally:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
