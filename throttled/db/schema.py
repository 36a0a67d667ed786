"""Versioned migrations: numbered SQL files applied in order, each once, recorded in
``schema_migrations`` (in the spirit of procrastinate's and River's).

- ``throttled/db/migrations/NNNN_name.sql``: forward migrations, kept with the package. 0001 is
  the first release's schema verbatim; each later one changes what the one before left.
  They are idempotent (``IF NOT EXISTS``, constraints dropped before being added), so a
  database made before versioning (by the old "apply schema.sql at every start") is brought
  up to date by running them all.
- ``schema.sql`` stays the one readable schema: what all migrations together produce (a test
  compares the two catalogs).

:func:`migrate` applies what is pending in one transaction under an advisory lock, so two
daemons or two ``throttled migrate`` runs never race; :func:`pending` only reads, so a
daemon whose schema is current starts without any DDL or lock (running DDL at every start
deadlocked with live daemons' traffic).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg
import sqlalchemy as sa
import trio
from sqlalchemy import text
from sqlalchemy.engine import Connection

from throttled.db.engine import Database, DatabaseUnavailable
from throttled.db.time import database_now

# Daemons starting together serialize on this lock instead of racing the migrations.
_MIGRATE_LOCK = "throttled:migrate"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
#: How long a migration waits for a table lock held by live traffic before failing (it is
#: retried by the caller) rather than queueing every query behind it.
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration: ``version`` (1, 2, …), ``name`` (``0007_liveness``), its SQL."""

    version: int
    name: str
    sql: str = ""

    def __str__(self) -> str:
        return self.name


class SchemaNotCurrent(Exception):
    """The database lacks migrations this daemon needs and may not apply them; ``str()`` is
    one line naming them and what to run."""


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in order.

    Raises:
        RuntimeError: two files share a number, or a number is missing (a packaging error).
    """
    found = []
    for entry in resources.files("throttled.db.migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps: {[m.name for m in found]}")
    return found


def latest() -> Migration:
    """The newest migration this package knows."""
    return migrations()[-1]


def applied(conn: Connection) -> set[int]:
    """Versions recorded in ``schema_migrations`` (empty before versioning or on a new database)."""
    if conn.execute(text("SELECT to_regclass('schema_migrations')")).scalar() is None:
        return set()
    return set(conn.execute(text("SELECT version FROM schema_migrations")).scalars())


def pending(conn: Connection) -> list[Migration]:
    """The migrations not applied yet, in order (reads only)."""
    done = applied(conn)
    return [m for m in migrations() if m.version not in done]


def migrate(conn: Connection) -> list[Migration]:
    """Apply every pending migration in order, in this transaction; returns those applied.

    Under an advisory lock: a second migrator waits, then finds nothing left to do. Locks on
    tables in use wait at most :data:`LOCK_TIMEOUT` (the transaction then fails whole).
    """
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:lock))"), {"lock": _MIGRATE_LOCK})
    conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    conn.execute(text("SET LOCAL client_min_messages = warning"))  # no NOTICE per skipped object
    conn.execute(text("""CREATE TABLE IF NOT EXISTS schema_migrations (
                             version     integer PRIMARY KEY,
                             name        text NOT NULL,
                             applied_at  timestamptz NOT NULL)"""))
    todo = pending(conn)
    for migration in todo:
        conn.exec_driver_sql(migration.sql)
        conn.execute(text("INSERT INTO schema_migrations (version, name, applied_at) VALUES (:v, :n, :at)"),
                     {"v": migration.version, "n": migration.name, "at": database_now(conn)})
    return todo


async def ensure_current(db: Database, attempts: int = 5) -> list[Migration]:
    """At a daemon's start: apply pending migrations, if any; returns those applied.

    A current schema costs one read and takes no lock. Migrating while other daemons serve
    can meet their locks: a lock timeout or deadlock is retried a few times.
    Raises:
        SchemaNotCurrent: migrations are pending and this role may not apply them (least
            privilege: run ``throttled migrate`` as the schema's owner).
        DatabaseUnavailable: the database is unreachable, or stayed locked.
    """
    todo = await db.transaction(pending)
    for attempt in range(attempts):
        if not todo:
            return []
        try:
            return await db.transaction(migrate)
        except sa.exc.ProgrammingError as exc:
            if isinstance(exc.orig, psycopg.errors.InsufficientPrivilege):
                names = ", ".join(m.name for m in todo)
                raise SchemaNotCurrent(f"the database lacks migration {names} and this role may not apply it: "
                                       "run `throttled migrate` as the schema's owner") from None
            raise
        except DatabaseUnavailable:
            if attempt == attempts - 1:
                raise
            await trio.sleep(0.5 * 2**attempt)
            todo = await db.transaction(pending)
    return []


def schema_sql() -> str:
    """The text of ``schema.sql`` shipped with the package (the readable current schema)."""
    return resources.files("throttled.db").joinpath("schema.sql").read_text()
