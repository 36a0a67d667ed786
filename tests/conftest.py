"""Shared fixtures: a real PostgreSQL database made for this test run.

``THROTTLED_TEST_DATABASE_URL`` names a server (CI: the machine's PostgreSQL on
127.0.0.1:5432); without it the embedded PostgreSQL is used. Either way the run creates its
own database ``throttled_test_<random>``, applies ``schema.sql``, and drops it at the end.
Each test starts from empty tables.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import tempfile
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from throttled.db.embedded import start_embedded
from throttled.db.engine import Database, libpq_url
from throttled.db.schema import migrate

pytest_plugins = ["tests.support.deadlines", "tests.support.clocks"]

UTC = dt.UTC
EPOCH = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # trio time 0 under TrioClock in tests
TABLES = "portals, queues, throttle_configs, action_executions, jobs, leaders, nodes, oauth_spent_states, named_throttles"


def server_url() -> str:
    url = os.environ.get("THROTTLED_TEST_DATABASE_URL")
    if url:
        return url
    base = Path("/var/lib/throttled") if os.geteuid() == 0 else Path(tempfile.gettempdir()) / "throttled-tests"
    return start_embedded(base, name="test-pg")


def pytest_collection_modifyitems(items):
    # The fast loop (`make check`) is unit + integration: everything with real processes,
    # real HTTP or a PostgreSQL cluster of its own is marked slow.
    for item in items:
        if {"e2e", "reliability"} & set(item.path.parts):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def database_url():
    """URL of a fresh, migrated database on the test server, dropped after the run."""
    server = sa.engine.make_url(libpq_url(server_url()))
    name = f"throttled_test_{secrets.token_hex(4)}"
    admin = server.render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.set(database=name).render_as_string(hide_password=False)
    db = Database(url, pool_size=1)
    db.transaction_sync(migrate)
    db.dispose()
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def scratch_databases():
    """A factory of new, empty databases (not migrated) on the test server: ``make()`` → URL;
    all are dropped after the test."""
    server = sa.engine.make_url(libpq_url(server_url()))
    admin = server.render_as_string(hide_password=False)
    made: list[str] = []

    def make() -> str:
        name = f"throttled_scratch_{secrets.token_hex(4)}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return server.set(database=name).render_as_string(hide_password=False)

    yield make
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database(database_url):
    """The test database with every table emptied."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY")
    return database_url


@pytest.fixture
def db(empty_database):
    """A :class:`Database` on the emptied test database."""
    database = Database(empty_database, pool_size=8)
    yield database
    database.dispose()


def install_portal(db: Database, portal_id: int) -> None:
    """Store an installed, active portal (tokens encrypted with a throwaway key), for tests
    that drive the throttle worker without HTTP: it holds queues of portals it cannot call."""
    from throttled.crypto import KeyRing
    from throttled.db import portals as portals_sql

    ring = KeyRing.single(bytes(32))
    now = dt.datetime.now(UTC)
    db.transaction_sync(portals_sql.save_install, portal_id, ring.encrypt("access", portal_id, "access_token"),
                        ring.encrypt("refresh", portal_id, "refresh_token"), now + dt.timedelta(days=3650), ["automation"],
                        ring.key_id, now)
