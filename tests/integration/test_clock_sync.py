"""Reading the database's time against real PostgreSQL while the pool is busy."""

from __future__ import annotations

import trio
from sqlalchemy import text

from throttled.clock import DatabaseClock
from throttled.db.engine import Database
from throttled.service.clock_sync import read_once

BUSY_S = 0.6


async def test_a_reading_taken_while_the_pool_is_busy_is_as_certain_as_an_idle_one(empty_database):
    # Timed around the whole transaction, the reading waited BUSY_S for the pool's only
    # connection and came back ±0.3 s uncertain; accepted (the reading in use was a minute old),
    # it could move the clock by as much, and a window by it.
    db = Database(empty_database, pool_size=1)
    clock = DatabaseClock()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(db.transaction, lambda conn: conn.execute(text(f"SELECT pg_sleep({BUSY_S})")))
            await trio.sleep(0.1)  # the sleeper holds the connection now
            started = trio.current_time()
            await read_once(clock, db)
            waited = trio.current_time() - started
    finally:
        db.dispose()
    assert waited >= BUSY_S / 2, f"the reading did not wait for the pool ({waited:.3f} s): this tested nothing"
    assert clock.uncertainty_s < 0.05, f"uncertainty {clock.uncertainty_s:.3f} s after waiting {waited:.3f} s"
