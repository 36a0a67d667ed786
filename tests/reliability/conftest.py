"""Fixtures of the reliability suite: its own PostgreSQL cluster (so scenarios may stop and
crash it), a fresh database per scenario, a per-scenario log folder, and the report.

``make reliability`` runs the full version (``THROTTLED_RELIABILITY=full``); ``make test``
and CI run the short one. The secrets scenario runs last: it scans what all others left.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import psycopg
import pytest

from throttled.db.engine import Database
from throttled.db.schema import migrate

from .harness import Report
from .postgres import PostgresCluster

REPORT = Report()
REPORT_PATH = Path(__file__).resolve().parents[2] / "build" / "reliability-report.md"


@pytest.fixture(scope="session")
def pg_cluster():
    """A running throwaway PostgreSQL cluster, removed after the session."""
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def reliability_database(pg_cluster) -> str:
    """URL of a fresh, migrated database on the suite's own cluster."""
    name = f"reliability_{secrets.token_hex(4)}"
    with psycopg.connect(pg_cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_cluster.url.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url, pool_size=1)
    db.transaction_sync(migrate)
    db.dispose()
    return url


@pytest.fixture
def log_dir(tmp_path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def report() -> Report:
    return REPORT


def pytest_collection_modifyitems(items):
    # The secrets scan must come after every scenario whose logs it reads.
    items.sort(key=lambda item: "test_secrets" in item.nodeid)


def pytest_runtest_logreport(report):
    # The report says which scenarios passed: a failed one's figures may look fine.
    if "tests/reliability/" not in report.nodeid:
        return
    if report.when == "call" or report.outcome != "passed":
        outcome = "error" if report.when != "call" and report.failed else report.outcome
        REPORT.outcome(report.nodeid.split("::", 1)[1], outcome)


def pytest_terminal_summary(terminalreporter):
    if not REPORT.rows:
        return
    text = REPORT.render()
    REPORT_PATH.parent.mkdir(exist_ok=True)
    REPORT_PATH.write_text(text)
    terminalreporter.write_sep("=", "reliability report")
    terminalreporter.write_line(text)
    terminalreporter.write_line(f"(written to {REPORT_PATH})")
