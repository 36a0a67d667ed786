"""``throttled jobs list|retry|cancel`` as an operator runs them: the installed console script
in a subprocess, with only ``THROTTLED_DATABASE_URL`` set. Tables for people, ``--json`` for
scripts; a missing job, a bad parameter or an action that does not apply exits non-zero with
one line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from throttled.db import jobs as jobs_sql

THROTTLED = Path(sys.executable).with_name("throttled")
NOW = dt.datetime.now(dt.UTC)


def throttled(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THROTTLED_")}
    env |= {"THROTTLED_DATABASE_URL": url, "COLUMNS": "200"}
    return subprocess.run([str(THROTTLED), *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def seeded(db):
    """Three jobs: a scheduled throttle job, a discarded one, a completed cleaner run."""
    def insert(conn):
        live, _ = jobs_sql.insert_job(conn, "throttle", {"queue_id": "queue:1:2:3:0"}, NOW,
                                      unique_key="throttle:queue:1:2:3:0", scheduled_at=NOW + dt.timedelta(hours=1))
        dead, _ = jobs_sql.insert_job(conn, "throttle", {"queue_id": "queue:1:shared:x"}, NOW, max_attempts=1)
        done, _ = jobs_sql.insert_job(conn, "cleaner", {}, NOW)
        for job_id in (dead, done):
            [job] = jobs_sql.claim_due_jobs(conn, "test:1:a", 1, NOW, NOW + dt.timedelta(minutes=1))
            assert job.id == job_id
        jobs_sql.retry_job(conn, dead, "test:1:a", "HubSpot said 400", NOW, NOW)
        jobs_sql.complete_job(conn, done, "test:1:a", NOW)
        return {"live": live, "dead": dead, "done": done}
    return db.url, db.transaction_sync(insert)


def test_list_as_json_and_table(seeded):
    url, ids = seeded
    listed = throttled(url, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)
    assert [(j["id"], j["state"]) for j in jobs] == [(ids["done"], "completed"), (ids["dead"], "discarded"),
                                                     (ids["live"], "scheduled")]
    assert jobs[1]["errors"][-1]["error"] == "HubSpot said 400"

    only = json.loads(throttled(url, "jobs", "list", "--kind", "throttle", "--state", "discarded", "--json").stdout)
    assert [j["id"] for j in only] == [ids["dead"]]
    assert len(json.loads(throttled(url, "jobs", "list", "--limit", "1", "--json").stdout)) == 1

    table = throttled(url, "jobs", "list")
    assert table.returncode == 0, table.stderr
    for text in ("queue:1:2:3:0", "discarded", "HubSpot said 400", "cleaner", "1/1"):
        assert text in table.stdout, table.stdout


def test_retry_and_cancel(seeded):
    url, ids = seeded
    retried = throttled(url, "jobs", "retry", str(ids["dead"]))
    assert retried.returncode == 0 and retried.stdout == f"job {ids['dead']} (throttle) retried: now available\n"
    cancelled = throttled(url, "jobs", "cancel", str(ids["live"]), "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["state"] == "cancelled"
    states = {j["id"]: j["state"] for j in json.loads(throttled(url, "jobs", "list", "--json").stdout)}
    assert states == {ids["dead"]: "available", ids["live"]: "cancelled", ids["done"]: "completed"}


@pytest.mark.parametrize(("args", "message"), [
    (("retry", "424242"), "no job 424242"),
    (("cancel", "424242"), "no job 424242"),
    (("cancel", "{done}"), "is completed"),
    (("retry", "{done}"), "is completed"),
    (("list", "--limit", "501"), "--limit"),
    (("list", "--state", "sleeping"), "--state"),
])
def test_failures_are_one_line(seeded, args, message):
    url, ids = seeded
    result = throttled(url, "jobs", *(a.format(**ids) for a in args))
    assert result.returncode != 0 and result.stdout == ""
    assert message in result.stderr, result.stderr
    if args[0] in ("retry", "cancel"):
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr


def test_retry_refuses_a_job_whose_key_another_live_job_holds(seeded, db):
    """A cancelled throttle job whose queue got a new live job (the cleaner's safety net) is
    not revived: two live jobs for one key would break the unique index (and invariant 3)."""
    url, ids = seeded
    assert throttled(url, "jobs", "cancel", str(ids["live"])).returncode == 0
    new_id, inserted = db.transaction_sync(lambda conn: jobs_sql.insert_job(
        conn, "throttle", {"queue_id": "queue:1:2:3:0"}, NOW, unique_key="throttle:queue:1:2:3:0"))
    assert inserted
    refused = throttled(url, "jobs", "retry", str(ids["live"]))
    assert refused.returncode == 1 and "another live job holds its key" in refused.stderr, refused.stderr
    states = {j["id"]: j["state"] for j in json.loads(throttled(url, "jobs", "list", "--json").stdout)}
    assert (states[ids["live"]], states[new_id]) == ("cancelled", "available")


def test_tables_keep_queue_ids_whole_in_a_narrow_terminal(seeded):
    # A new-user trial: piped or in 80 columns, ids were cut to `queue:…`, and operators need
    # them for pause/resume/retry.
    url, _ = seeded
    env = {k: v for k, v in os.environ.items() if not k.startswith("THROTTLED_")}
    env |= {"THROTTLED_DATABASE_URL": url, "COLUMNS": "60"}
    table = subprocess.run([str(THROTTLED), "jobs", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    assert "queue:1:2:3:0" in table.stdout and "queue:1:shared:x" in table.stdout, table.stdout
