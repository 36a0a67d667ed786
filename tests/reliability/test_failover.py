"""Scenario 11: the PostgreSQL primary killed under load, its synchronous standby promoted.

A primary and a streaming standby from Debian's binaries (``pg_basebackup``), the primary
with ``synchronous_standby_names='*'`` and ``synchronous_commit=on``: a commit returns only
once the standby has it, so what a webhook was answered 200 for survives the primary. The
daemon gets libpq's multi-host URL with ``target_session_attrs=read-write``. Under steady
webhook load the primary is stopped in ``immediate`` mode (no shutdown: what a crash
leaves) and, a second later, the standby is promoted — what Patroni would do. Every webhook
answered 200 before the kill must be completed at HubSpot afterwards; webhooks during the
switch get 503 + Retry-After; the daemon reconnects by itself.
"""

from __future__ import annotations

import secrets
import time

import psycopg
import trio

from throttled.db.engine import Database
from throttled.db.schema import migrate
from throttled.testing import Step

from .harness import Load, database_health, drain, leftovers, reliability_stack, scale, settle, verdict
from .postgres import PostgresCluster

STEPS = [Step(workflow_id=21, action_id=1, limit=40, period=1, unit="seconds"),
         Step(workflow_id=22, action_id=1, limit=30, period=2, unit="seconds", mode="smooth")]
def _make_synchronous(primary: PostgresCluster) -> None:
    """Once the standby streams: commits wait for it (``synchronous_commit=on`` is the default).
    Set before, every commit — ``CREATE DATABASE`` included — would wait for a standby that
    does not exist yet."""
    with psycopg.connect(primary.url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with psycopg.connect(primary.url, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'").fetchone():
                return
        time.sleep(0.1)
    raise AssertionError("the standby did not become synchronous within 30 s")


def _clusters(name: str) -> tuple[PostgresCluster, PostgresCluster]:
    primary = PostgresCluster()
    primary.start()
    with psycopg.connect(primary.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(primary.url.rsplit("/", 1)[0] + f"/{name}", pool_size=1)
    try:
        db.transaction_sync(migrate)
    finally:
        db.dispose()
    standby = PostgresCluster(standby_of=primary)
    standby.start()
    _make_synchronous(primary)
    return primary, standby


async def test_primary_killed_under_load_and_the_standby_promoted_loses_nothing(log_dir, report):
    name = f"failover_{secrets.token_hex(4)}"
    primary, standby = await trio.to_thread.run_sync(_clusters, name)
    url = (f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/{name}"
           "?target_session_attrs=read-write&connect_timeout=2")
    try:
        async with reliability_stack(url, log_dir) as stack:
            load = Load(stack, STEPS, rate=30, prefix="fo")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(load.run, scale(10, 40))
                await trio.sleep(scale(4, 10))
                acked_before = set(load.acked)
                await trio.to_thread.run_sync(primary.stop, "immediate")
                killed = time.monotonic()
                await trio.sleep(1.0)
                await trio.to_thread.run_sync(standby.promote)
                promoted, promoted_wall = time.monotonic(), time.time()
                with trio.fail_after(30):
                    while not [t for t in load.accepted_at if t > promoted]:
                        await trio.sleep(0.02)
                webhooks_s = min(t for t in load.accepted_at if t > promoted) - promoted
                completions = stack.sandbox.state.completions
                with trio.fail_after(30):
                    while not [c for c in completions if c["completedAt"] > promoted_wall]:
                        await trio.sleep(0.02)
                releases_s = min(c["completedAt"] for c in completions if c["completedAt"] > promoted_wall) - promoted_wall
            drained_s = await drain(stack, load.acked, timeout_s=90)
            settled_s = await settle(url, timeout_s=40)
            result = verdict(stack, load.acked, STEPS)
            health = database_health(url)
            alive = all(d.process.poll() is None for d in stack.daemons)
        refused = [(t, retry) for t, retry in load.unavailable if killed <= t <= promoted + webhooks_s]
    finally:
        await trio.to_thread.run_sync(standby.destroy)
        await trio.to_thread.run_sync(primary.destroy)

    completed = {c["callbackId"] for c in stack.sandbox.state.completions}
    report.add("11. PostgreSQL failover (primary killed, synchronous standby promoted)", {
        "acknowledged (200 BLOCK) / before the kill": f"{result.acknowledged} / {len(acked_before)}",
        "completed at HubSpot": result.completed,
        "lost": len(result.lost),
        "webhooks answered 503 during the switch / without Retry-After":
            f"{len(refused)} / {sum(1 for _, r in refused if not r or int(r) <= 0)}",
        "kill → promotion (s)": round(promoted - killed, 2),
        "promotion → first 200 (s)": round(webhooks_s, 2),
        "promotion → first completion at HubSpot (s)": round(releases_s, 2),
        "sent again (at least once: HubSpot answers 'already completed')": len(result.repeated),
        "worst window / limit": result.windows_text,
        "backlog drained after load (s)": drained_s, "leases settled (s)": settled_s,
        "left pending / releasing / stuck jobs": " / ".join(map(str, leftovers(health))),
    })
    assert alive  # the daemon reconnected by itself
    assert acked_before <= completed, sorted(acked_before - completed)[:10]
    assert result.lost == [] and result.acknowledged >= load.generated > 0
    assert refused and all(r and int(r) > 0 for _, r in refused)
    assert result.window_exceeded == []
    assert leftovers(health) == (0, 0, 0)
