"""The schema and its history: versioned migrations, schema.sql, the Core mirror.

- Migrating is idempotent and a current schema costs no DDL.
- All migrations applied to an empty database give exactly what schema.sql describes
  (columns, types, nullability, defaults, indexes, constraints, unlogged tables).
- A database made by the first release (0001, commit f9f561e) with data in it, and one made
  by the last unversioned schema (applied at every start until versioning), both upgrade to
  the same current schema with their rows intact and usable.
- The SQLAlchemy Core tables mirror the database.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import psycopg
import sqlalchemy as sa

from throttled import control
from throttled.db import executions as executions_sql
from throttled.db import queues as queues_sql
from throttled.db.engine import Database, libpq_url
from throttled.db.schema import latest, migrate, migrations, pending, schema_sql
from throttled.db.tables import metadata

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
BEFORE_VERSIONING = Path(__file__).resolve().parents[1] / "data" / "schema-before-versioning.sql"


def _type_name(t) -> str:
    return type(t).__name__.upper().replace("DATETIME", "TIMESTAMP").replace("TEXT", "TEXT")


def _catalog(url: str) -> dict[str, object]:
    """Everything that makes a schema, order-independent."""
    with psycopg.connect(libpq_url(url)) as conn:
        def rows(sql: str) -> list[tuple]:
            return sorted(tuple(r) for r in conn.execute(sql).fetchall())
        return {
            "tables": rows("SELECT relname, relpersistence FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                           "AND relkind = 'r'"),
            "columns": rows("SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, ''), "
                            "is_identity FROM information_schema.columns WHERE table_schema = 'public'"),
            "indexes": rows("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"),
            "constraints": rows("SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                "WHERE connamespace = 'public'::regnamespace"),
        }


def _run_sql(url: str, sql: str) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(sql)


def _migrated(url: str) -> list[str]:
    db = Database(url, pool_size=1)
    try:
        return [m.name for m in db.transaction_sync(migrate)]
    finally:
        db.dispose()


def test_migrate_twice_is_harmless_and_a_current_schema_has_nothing_pending(db):
    assert db.transaction_sync(migrate) == []
    assert db.transaction_sync(pending) == []
    applied = db.transaction_sync(lambda c: [tuple(r) for r in c.execute(sa.text(
        "SELECT version, name FROM schema_migrations ORDER BY version"))])
    assert applied == [(m.version, m.name) for m in migrations()] and applied[-1][1] == latest().name


def test_the_migrations_give_what_schema_sql_describes(scratch_databases):
    from_file, from_migrations = scratch_databases(), scratch_databases()
    _run_sql(from_file, schema_sql())
    assert _migrated(from_migrations) == [m.name for m in migrations()]
    assert _catalog(from_migrations) == _catalog(from_file)
    created = re.findall(r"CREATE (?:UNLOGGED )?TABLE IF NOT EXISTS (\w+)", schema_sql())
    assert sorted(created) == sorted(set(created)), created  # each table once (a new-user trial found two)


def _first_release_data(url: str) -> None:
    """Rows as the first release wrote them (its columns only)."""
    _run_sql(url, """
        INSERT INTO portals (portal_id, status, access_token, refresh_token, expires_at, scopes, key_id,
                             installed_at, updated_at)
        VALUES (62515, 'active', '\\x00', '\\x01', '2026-03-02 10:00+00', '{automation}', 'k1',
                '2026-03-01 09:00+00', '2026-03-01 09:00+00');
        INSERT INTO queues (queue_id, portal_id, max_throughput, time_period, time_unit, mode, state,
                            created_at, updated_at)
        VALUES ('queue:62515:7:2:0', 62515, 5, 1, 'hours', 'burst', 'on_hold', '2026-03-01 09:00+00',
                '2026-03-01 09:00+00');
        INSERT INTO throttle_configs (portal_id, action_id, max_throughput, time_period, time_unit, updated_at)
        VALUES (62515, 2, 10, 1, 'hours', '2026-03-01 09:00+00');
        INSERT INTO action_executions (callback_id, portal_id, queue_id, object_type, object_id, input_fields,
                                       received_at, expires_at, state, released_at, attempts)
        VALUES ('ap-62515-1-2-0', 62515, 'queue:62515:7:2:0', 'CONTACT', '1', '{"max_throughput": "5"}',
                '2026-03-01 09:00+00', '2026-03-08 09:00+00', 'released', '2026-03-01 09:00+00', 1),
               ('ap-62515-2-2-0', 62515, 'queue:62515:7:2:0', 'CONTACT', '2', '{"max_throughput": "5"}',
                '2026-03-01 09:00+00', '2026-03-08 09:00+00', 'pending', NULL, 0);
        INSERT INTO jobs (kind, args, state, unique_key, portal_id, scheduled_at, inserted_at)
        VALUES ('throttle', '{"queue_id": "queue:62515:7:2:0"}', 'scheduled', 'throttle:queue:62515:7:2:0', 62515,
                '2026-03-02 09:00+00', '2026-03-01 09:00+00');
    """)


def test_a_first_release_database_with_data_upgrades_to_the_current_schema(scratch_databases):
    old, reference = scratch_databases(), scratch_databases()
    _run_sql(old, migrations()[0].sql)  # what the first release applied at start
    _first_release_data(old)
    assert _migrated(old) == [m.name for m in migrations()]  # no schema_migrations: every migration, once
    _run_sql(reference, schema_sql())
    assert _catalog(old) == _catalog(reference)

    db = Database(old, pool_size=1)
    try:
        [overview] = db.transaction_sync(control.list_queues, None, NOW)
        counts = db.transaction_sync(executions_sql.execution_counts)
        locked = db.transaction_sync(queues_sql.lock_queue, "queue:62515:7:2:0", NOW)
        portal_cols = db.transaction_sync(lambda c: c.execute(sa.text(
            "SELECT held_until, holds, scopes FROM portals")).one())
    finally:
        db.dispose()
    assert (overview.queue.state, overview.queue.holds, overview.queue.action_id) == ("on_hold", 0, None)
    assert overview.override is None  # a queue without action_id has no override to look up
    assert counts == {"queue:62515:7:2:0": {"released": 1, "pending": 1}}
    assert locked is not None and locked.releasing == 0 and locked.lapsed == 0
    assert tuple(portal_cols) == (None, 0, ["automation"])


def test_a_database_from_before_versioning_upgrades_too(scratch_databases):
    old, reference = scratch_databases(), scratch_databases()
    _run_sql(old, BEFORE_VERSIONING.read_text())  # applied at every start, no schema_migrations
    _run_sql(old, "INSERT INTO portals (portal_id, installed_at, updated_at, rate_limited_until) "
                  "VALUES (1, now(), now(), '2026-03-03 00:05+00')")
    assert _migrated(old) == [m.name for m in migrations()]
    _run_sql(reference, schema_sql())
    assert _catalog(old) == _catalog(reference)
    with psycopg.connect(libpq_url(old)) as conn:  # the DAILY hold moved to the portal hold
        assert conn.execute("SELECT held_until IS NOT NULL, rate_limited_until FROM portals").fetchone() == (True, None)


def test_core_tables_match_the_database(db):
    inspector = sa.inspect(db.engine)
    assert set(inspector.get_table_names()) == set(metadata.tables)
    for table in metadata.sorted_tables:
        reflected = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(reflected) == {c.name for c in table.columns}, table.name
        for column in table.columns:
            found = reflected[column.name]
            assert found["nullable"] == column.nullable, (table.name, column.name)
            assert _type_name(found["type"]) in _type_name(column.type) or _type_name(column.type) in _type_name(found["type"]), (
                table.name, column.name, found["type"], column.type)
        db_indexes = {
            i["name"]: i for i in inspector.get_indexes(table.name) if not i.get("duplicates_constraint")
        }
        core_indexes = {i.name: i for i in table.indexes}
        assert set(db_indexes) == set(core_indexes), table.name
        for name, index in core_indexes.items():
            assert bool(db_indexes[name]["unique"]) == index.unique, name
        db_uniques = {u["name"] for u in inspector.get_unique_constraints(table.name)}
        core_uniques = {c.name for c in table.constraints if isinstance(c, sa.UniqueConstraint)}
        assert db_uniques == core_uniques, table.name


async def test_starting_against_a_current_schema_takes_no_lock_live_traffic_holds(db):
    # Found by the reliability suite: a daemon restarted among live ones ran its schema's DDL
    # (ALTER TABLE … IF NOT EXISTS still takes an exclusive lock) and died of a deadlock with
    # their traffic ("database unavailable: deadlock detected").
    import trio

    from throttled.db.schema import ensure_current

    with psycopg.connect(libpq_url(db.url)) as traffic:  # a live daemon's open transaction
        traffic.execute("LOCK TABLE portals, queues, action_executions, jobs IN ROW EXCLUSIVE MODE")
        with trio.fail_after(3):
            assert await ensure_current(db) == []


def test_the_schemas_state_checks_list_exactly_the_typed_states(db):
    import re

    from throttled.states import ExecutionState, JobState, PortalStatus, QueueState

    def allowed(table: str, column: str) -> set[str]:
        definition = db.transaction_sync(lambda c: c.execute(sa.text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = :name"),
            {"name": f"{table}_{column}_check"}).scalar_one())
        return set(re.findall(r"'([a-z_]+)'::text", definition))

    assert allowed("action_executions", "state") == set(ExecutionState)
    assert allowed("jobs", "state") == set(JobState)
    assert allowed("queues", "state") == set(QueueState)
    assert allowed("portals", "status") == set(PortalStatus)
