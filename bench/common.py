"""Shared pieces of the benchmarks: a throwaway database, daemon settings, markdown tables."""

from __future__ import annotations

from contextlib import contextmanager

from throttled import logs
from throttled.crypto import generate_key
from throttled.settings import Settings, load_settings
from throttled.testing import scratch_database, server_url


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


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
