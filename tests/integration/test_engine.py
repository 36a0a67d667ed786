"""The pool's disconnect handling on real PostgreSQL: idle connections are pinged before
use, busy ones are not (issue 17: a ping on every checkout cost 9 % of the release path)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from throttled.db.engine import Database, DatabaseUnavailable


def _backend_pid(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(db, pid: int) -> None:
    assert db.transaction_sync(lambda c: c.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                               .scalar_one()), "the backend was not terminated"


def test_an_idle_connection_whose_server_went_away_is_replaced_unseen(db):
    pool = Database(db.url, pool_size=1, ping_idle_s=0.0)  # every checkout counts as idle
    try:
        first = pool.transaction_sync(_backend_pid)
        _terminate(db, first)
        second = pool.transaction_sync(_backend_pid)  # the ping found it dead; the pool reconnected
        assert second != first
    finally:
        pool.dispose()


def test_a_busy_connection_is_not_pinged_and_an_outage_costs_one_transaction(db):
    pool = Database(db.url, pool_size=1, ping_idle_s=3600.0)  # never idle long enough for a ping
    try:
        first = pool.transaction_sync(_backend_pid)
        _terminate(db, first)
        with pytest.raises(DatabaseUnavailable):
            pool.transaction_sync(_backend_pid)
        assert pool.transaction_sync(_backend_pid) != first  # the pool was dropped and reconnected
    finally:
        pool.dispose()
