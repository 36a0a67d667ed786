"""``throttled migrate`` and ``run`` through a real PgBouncer in session mode (its default).

Before: ``migrate`` failed with ``FATAL: unsupported startup parameter: options`` — we sent
the session time zone as a startup option, which PgBouncer refuses; now it is set on each
new connection instead.
"""

from __future__ import annotations

import os
import subprocess
import sys

import trio

from tests.conftest import server_url
from tests.support.completions import settled_completions
from tests.support.pgbouncer import running_pgbouncer
from throttled.testing import Step, local_stack
from throttled.testing.databases import scratch_database

STEP = Step(workflow_id=91, action_id=9, limit=10, period=1, unit="seconds")


async def test_migrate_then_run_through_pgbouncer_in_session_mode():
    database, drop = scratch_database(server_url())
    try:
        with running_pgbouncer(database) as pooled:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("THROTTLED_", "HUBSPOT_"))}
            migrated = await trio.to_thread.run_sync(lambda: subprocess.run(
                [sys.executable, "-m", "throttled", "migrate"], env=env | {"THROTTLED_DATABASE_URL": pooled},
                capture_output=True, text=True, timeout=60))
            assert migrated.returncode == 0, migrated.stderr[-2000:]
            async with local_stack(pooled) as stack:
                ids = [f"ap-{stack.portal_id}-91-{i}" for i in range(5)]
                for callback_id in ids:
                    response = await stack.hubspot.enroll(stack.daemons[0].url, callback_id, stack.portal_id, STEP)
                    assert response.status_code == 200, response.text
                done = await settled_completions(stack, ids=ids, timeout_s=20)
        assert sorted(c["callbackId"] for c in done) == sorted(ids)
    finally:
        drop()
