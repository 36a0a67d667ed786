"""The database's clock: the one time all daemons share (see ``throttled/clock.py``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection


def database_now(conn: Connection) -> dt.datetime:
    """The database server's current time (``clock_timestamp()``: the moment the statement
    runs, not the transaction's start), aware UTC."""
    value: dt.datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    return value.astimezone(dt.UTC)


def timed_database_now(conn: Connection, monotonic: Callable[[], float]) -> tuple[float, dt.datetime, float]:
    """A reading of the database's time for :meth:`DatabaseClock.calibrate`: ``(monotonic
    seconds just before, database_now, monotonic seconds just after)``, timed around the one
    statement only. A first statement opens the transaction, so the timing holds one round
    trip and no pool wait, thread hand-off or BEGIN: under load those took hundreds of
    milliseconds, and a reading that uncertain, once accepted, moved the clock by as much."""
    conn.execute(text("SELECT 1"))
    sent = monotonic()
    at = database_now(conn)
    return sent, at, monotonic()
