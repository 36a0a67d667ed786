"""Scenario 12: a rolling upgrade — a daemon of the previous version keeps serving while the
new version migrates the schema and starts beside it.

The previous version is this repository at :data:`PREVIOUS` (the last commit before
migration 0010), unpacked with ``git archive`` and run from its own source
(``PYTHONPATH``). It migrates a fresh database to its schema and serves webhooks under
load; meanwhile ``throttled migrate`` of this version applies the newer migrations, and a
daemon of this version joins. What is supported (README, "Schema migrations"): migrations
only add, so the old daemon keeps working on the new schema; nothing is lost, no window is
exceeded. Without the repository's history (a shallow clone) the scenario is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import psycopg
import pytest
import trio

from throttled.db.schema import migrations
from throttled.testing import Step

from .harness import DaemonProcess, Load, drain, reliability_stack, verdict

REPO = Path(__file__).resolve().parents[2]
PREVIOUS = "775d668765ae0258689f0387f7d72afd303774e3"  # migrations 0001–0009
OLD_LATEST = 9  # the previous version's last migration
STEPS = [Step(workflow_id=31, action_id=1, limit=30, period=1, unit="seconds")]


def _previous_version(folder: Path) -> Path:
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        pytest.skip("no git history here: the previous version cannot be unpacked")
    archive = subprocess.run([git, "-C", str(REPO), "archive", "--format=tar", PREVIOUS, "throttled"],
                             capture_output=True, timeout=60)
    if archive.returncode != 0:  # a shallow clone: skipped (with this reason in the summary), never failed
        pytest.skip(f"commit {PREVIOUS[:7]} is not in this clone (shallow?): {archive.stderr.decode()[:200]}")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def _run_from(source: str) -> dict[str, str]:
    """Environment that makes ``python -m throttled`` import ``source``'s package: first on the
    path, and the working directory (this checkout) not put before it (PYTHONSAFEPATH)."""
    return {"PYTHONPATH": source, "PYTHONSAFEPATH": "1"}


def _migrate(url: str, pythonpath: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THROTTLED_", "HUBSPOT_", "PYTHONPATH"))}
    env |= {"THROTTLED_DATABASE_URL": url} | (_run_from(pythonpath) if pythonpath else {})
    done = subprocess.run([sys.executable, "-m", "throttled", "migrate"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


async def test_a_previous_version_keeps_serving_while_the_new_one_migrates_and_joins(
        reliability_database, log_dir, report):
    old_source = await trio.to_thread.run_sync(_previous_version, Path(tempfile.mkdtemp(prefix="thr-previous-")))
    try:
        with psycopg.connect(reliability_database, autocommit=True) as conn:  # start from an empty database
            conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        await trio.to_thread.run_sync(_migrate, reliability_database, str(old_source))
        async with reliability_stack(reliability_database, log_dir, env=_run_from(str(old_source))) as stack:
            old = stack.daemons[0]
            load = Load(stack, STEPS, rate=20, prefix="up", targets=[old.url])
            new = DaemonProcess("daemon-new", {k: v for k, v in old.env.items() if k not in _run_from("")},
                                log_dir / "daemon-new.log")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(load.run, 10.0)
                await trio.sleep(3.0)
                applied = await trio.to_thread.run_sync(_migrate, reliability_database, None)
                await new.start(stack.hubspot.http)
                await trio.sleep(2.0)
            drained_s = await drain(stack, load.acked, timeout_s=60)
            result = verdict(stack, load.acked, STEPS)
            alive = [d.process.poll() is None for d in (old, new)]
            await new.terminate(timeout_s=15)
        with psycopg.connect(reliability_database) as conn:
            versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        shutil.rmtree(old_source, ignore_errors=True)

    report.add("12. rolling upgrade (previous version serving while the new one migrates)", {
        "previous version": PREVIOUS[:7], "migrations applied by the new version": applied.strip(),
        "acknowledged by the previous version (200 BLOCK)": result.acknowledged,
        "completed at HubSpot": result.completed, "lost": len(result.lost),
        "worst window / limit": result.windows_text, "backlog drained after load (s)": round(drained_s, 2),
    })
    newer = [m.name for m in migrations() if m.version > OLD_LATEST]
    assert applied.startswith("applied ") and all(name in applied for name in newer), applied  # by the new version
    assert alive == [True, True]
    assert versions == [m.version for m in migrations()]
    assert result.lost == [] and result.acknowledged >= load.generated > 0
    assert result.window_exceeded == []
