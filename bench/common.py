"""Shared pieces of the benchmarks: a throwaway database, daemon settings, markdown tables."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from contextlib import contextmanager
from typing import Any

from throttled import logs
from throttled.crypto import generate_key
from throttled.db.engine import Database
from throttled.ingest.payload import parse_enrollment
from throttled.ingest.store import store_enrollments
from throttled.settings import Settings, load_settings
from throttled.testing import scratch_database, server_url
from throttled.throttle.block_length import BlockLimits

#: Block lengths of every benchmark's held enrollments (a week asked, a month at most).
BLOCKS = BlockLimits(dt.timedelta(days=7), dt.timedelta(days=30))


@contextmanager
def bench_database():
    """A fresh database on ``THROTTLED_DATABASE_URL``'s server (or the embedded one), dropped after."""
    url, drop = scratch_database(server_url())
    try:
        yield url
    finally:
        drop()


def daemon_settings(database_url: str, port: int, secret: str, **overrides) -> Settings:
    """Settings of a benchmark daemon on ``127.0.0.1:port`` (logs at WARNING)."""
    logs.configure("WARNING")
    return load_settings(
        database_url=database_url, bind=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}",
        admin_bind="127.0.0.1:0", hubspot_client_id="bench", hubspot_client_secret=secret,
        encryption_key=generate_key(), log_level="WARNING", **overrides,
    )


async def store_held(db: Database, bodies: Iterable[dict[str, Any]], batch_size: int = 2000) -> int:
    """Store webhook ``bodies`` (parsed JSON, e.g. with a ``release_after`` input) as the
    batcher's group commit does, ``batch_size`` to a transaction; returns how many."""
    batch, stored = [], 0
    for body in bodies:
        batch.append(parse_enrollment(json.dumps(body).encode()))
        if len(batch) == batch_size:
            await db.transaction(store_enrollments, batch, dt.datetime.now(dt.UTC), BLOCKS)
            stored, batch = stored + len(batch), []
    if batch:
        await db.transaction(store_enrollments, batch, dt.datetime.now(dt.UTC), BLOCKS)
    return stored + len(batch)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
