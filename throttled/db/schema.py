"""Apply ``schema.sql`` idempotently (``throttled migrate`` and ``throttled run`` start-up)."""

from __future__ import annotations

from importlib import resources

from sqlalchemy.engine import Connection

# Daemons starting together serialize on this lock instead of racing CREATE ... IF NOT EXISTS.
_MIGRATE_LOCK = "throttled:migrate"


def schema_sql() -> str:
    """The text of ``schema.sql`` shipped with the package (the top-level file in a checkout)."""
    return resources.files("throttled.db").joinpath("schema.sql").read_text()


def migrate(conn: Connection) -> None:
    """Create every table and index that does not exist yet; safe to run at any time."""
    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (_MIGRATE_LOCK,))
    conn.exec_driver_sql("SET LOCAL client_min_messages = warning")  # no NOTICE per existing table
    conn.exec_driver_sql(schema_sql())
