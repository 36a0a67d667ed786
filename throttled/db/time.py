"""The database's clock: the one time all daemons share (see ``throttled/clock.py``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.engine import Connection


def database_now(conn: Connection) -> dt.datetime:
    """The database server's current time (``clock_timestamp()``: the moment the statement
    runs, not the transaction's start), aware UTC."""
    value: dt.datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    return value.astimezone(dt.UTC)
