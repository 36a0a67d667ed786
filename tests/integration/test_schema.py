"""schema.sql and the SQLAlchemy Core mirror agree, and migrating is idempotent."""

import sqlalchemy as sa

from throttled.db.schema import migrate
from throttled.db.tables import metadata


def _type_name(t) -> str:
    return type(t).__name__.upper().replace("DATETIME", "TIMESTAMP").replace("TEXT", "TEXT")


def test_migrate_twice_is_harmless(db):
    db.transaction_sync(migrate)
    db.transaction_sync(migrate)


def test_core_tables_match_the_database(db):
    inspector = sa.inspect(db.engine)
    assert set(inspector.get_table_names()) == set(metadata.tables)
    for table in metadata.sorted_tables:
        reflected = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert list(reflected) == [c.name for c in table.columns], table.name
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
