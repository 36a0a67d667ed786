"""``throttled run`` as a role with only DML on our tables (``deploy/postgres/roles.sql``,
part 2, run as written with this test's names): it serves when the schema is current, and
when a migration is pending it stops with one line naming it — never a traceback, never SQL
(before: ``run`` applied DDL at every start, and such a role got a ~100-line traceback that
printed the whole schema)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
import sqlalchemy as sa
import trio

from tests.conftest import server_url
from tests.support.completions import settled_completions
from throttled.crypto import generate_key
from throttled.db.engine import Database, libpq_url
from throttled.db.schema import migrate, migrations
from throttled.testing import Step, free_port, local_stack
from throttled.testing.databases import scratch_database

ROLES_SQL = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "roles.sql"
STEP = Step(workflow_id=93, action_id=3, limit=10, period=1, unit="seconds")


def _part_two(database: str, app_role: str) -> list[str]:
    text = ROLES_SQL.read_text().split("-- Part 2", 1)[1].split("\n", 1)[1]
    statements = [s.strip() for s in re.sub(r"--[^\n]*", "", text).split(";") if s.strip()]
    # This test's owner is the server's superuser, postgres (it ran the migrations).
    return [s.replace("DATABASE throttled ", f'DATABASE "{database}" ').replace("throttled_app", app_role)
            .replace("throttled_owner", "postgres") for s in statements]


def _run(url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THROTTLED_", "HUBSPOT_"))}
    env |= {"THROTTLED_DATABASE_URL": url, "HUBSPOT_CLIENT_SECRET": "s" * 24, "THROTTLED_ENCRYPTION_KEY": generate_key(),
            "THROTTLED_BIND": f"127.0.0.1:{free_port()}", "THROTTLED_ADMIN_BIND": f"127.0.0.1:{free_port()}"}
    return subprocess.run([sys.executable, "-m", "throttled", "run"], env=env,
                          capture_output=True, text=True, timeout=60)


async def test_a_dml_only_role_serves_a_current_schema_and_names_a_missing_migration():
    database, drop = scratch_database(server_url())
    role = f"thr_app_{secrets.token_hex(4)}"
    owner_url = libpq_url(database)
    app_url = sa.engine.make_url(owner_url).set(username=role).render_as_string(hide_password=False)
    try:
        owner = Database(database, pool_size=1)
        try:
            owner.transaction_sync(migrate)
        finally:
            owner.dispose()
        with psycopg.connect(owner_url, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{role}" LOGIN')
            for statement in _part_two(sa.engine.make_url(owner_url).database, role):
                conn.execute(statement)

        async with local_stack(app_url) as stack:
            ids = [f"ap-{stack.portal_id}-93-{i}" for i in range(4)]
            for callback_id in ids:
                response = await stack.hubspot.enroll(stack.daemons[0].url, callback_id, stack.portal_id, STEP)
                assert response.status_code == 200, response.text
            done = await settled_completions(stack, ids=ids, timeout_s=20)
        assert sorted(c["callbackId"] for c in done) == sorted(ids)

        last = migrations()[-1]
        with psycopg.connect(owner_url, autocommit=True) as conn:  # as if the owner had not migrated yet
            conn.execute("DELETE FROM schema_migrations WHERE version = %s", (last.version,))
        stopped = await trio.to_thread.run_sync(_run, app_url)
        lines = [line for line in stopped.stderr.strip().splitlines() if not line.startswith("{")]  # not log events
        assert stopped.returncode == 1, stopped.stderr[-2000:]
        assert len(lines) == 1, lines[:10]
        assert last.name in lines[0] and "throttled migrate" in lines[0], lines[0]
        assert "CREATE" not in stopped.stderr and "Traceback" not in stopped.stderr
    finally:
        drop()
        with psycopg.connect(libpq_url(server_url()), autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
