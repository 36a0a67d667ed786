"""The database's work per webhook and per release, measured where it happens: a private
PostgreSQL cluster (Debian's binaries, started here) with ``pg_stat_statements`` preloaded,
one daemon and the sandbox HubSpot over HTTP.

Two phases, each with the statistics reset before and read after:

- **ingest**: signed webhooks through the real endpoint (group commit by the batcher);
- **release**: the held records, due at once over many queues, released at their rates to
  the sandbox (the job claims, throttle runs, leases, completions and their outcomes).

Per webhook and per release: statements executed (``pg_stat_statements.calls``), transactions
committed (``pg_stat_database.xact_commit``), WAL bytes (``pg_current_wal_lsn`` difference)
and WAL syncs (``pg_stat_wal.wal_sync``, the fsyncs a commit waits for); and the statements
that cost the most time in the release phase. The baseline in the same run: the same counters
over an idle daemon for as long (what a daemon costs doing nothing).

Usage: ``.venv/bin/python -m bench.db_cost [webhooks] [queues]`` (needs the ``postgresql``
package; as root the cluster runs as ``postgres``).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time

import sqlalchemy as sa
import trio

from tests.reliability.postgres import PostgresCluster
from throttled import logs
from throttled.db.engine import Database
from throttled.testing import Step, enrollment_body, local_stack

RATE = (50, 1)  # per queue: 50 per second, burst — the callbacks budget, not the rate, is the bound


def _counters(db: Database, dbname: str) -> dict[str, float]:
    def read(conn) -> dict[str, float]:
        calls = conn.execute(sa.text(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query NOT ILIKE '%pg_stat%'")).scalar_one()
        commits = conn.execute(sa.text("SELECT xact_commit FROM pg_stat_database WHERE datname = :d"), {"d": dbname}
                               ).scalar_one()
        lsn = conn.execute(sa.text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")).scalar_one()
        syncs = conn.execute(sa.text("SELECT wal_sync FROM pg_stat_wal")).scalar_one()
        return {"statements": float(calls), "commits": float(commits), "wal_bytes": float(lsn), "wal_syncs": float(syncs)}
    return db.transaction_sync(read)


def _reset(db: Database) -> None:
    db.transaction_sync(lambda conn: conn.execute(sa.text("SELECT pg_stat_statements_reset()")))


def _top(db: Database, n: int = 8) -> list[tuple[int, float, str]]:
    rows = db.transaction_sync(lambda conn: conn.execute(sa.text(
        """SELECT calls, total_exec_time, regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements
           WHERE query NOT ILIKE '%pg_stat%' ORDER BY total_exec_time DESC LIMIT :n"""), {"n": n}).all())
    return [(int(c), float(t), q[:90]) for c, t, q in rows]


def _delta(after: dict[str, float], before: dict[str, float], per: float) -> dict[str, float]:
    # The reading itself commits once and writes a little WAL: within the noise per thousand.
    return {k: (after[k] - before[k]) / per for k in after}


async def main(webhooks: int, queues: int) -> None:
    logs.configure("WARNING")
    cluster = PostgresCluster(settings={"shared_preload_libraries": "pg_stat_statements", "fsync": "on",
                                        "pg_stat_statements.track": "all", "track_wal_io_timing": "on"})
    cluster.start()
    try:
        admin = Database(cluster.url, pool_size=1)
        admin.transaction_sync(lambda conn: conn.execute(sa.text("CREATE EXTENSION pg_stat_statements")))
        async with local_stack(cluster.url, overrides={"log_level": "WARNING", "workers": 64}) as stack:
            daemon, portal = stack.daemons[0], stack.portal_id
            steps = [Step(workflow_id=q, action_id=1, limit=RATE[0], period=RATE[1], unit="seconds")
                     for q in range(queues)]
            await trio.sleep(2)
            idle_before, idle_started = _counters(admin, "postgres"), time.monotonic()
            await trio.sleep(10)
            idle = _delta(_counters(admin, "postgres"), idle_before, time.monotonic() - idle_started)

            t0_ms = int((time.time() + 600) * 1000)  # held until the release phase lifts it
            _reset(admin)
            before = _counters(admin, "postgres")
            started = time.monotonic()
            async with trio.open_nursery() as nursery:
                send, receive = trio.open_memory_channel[int](webhooks)
                for n in range(webhooks):
                    send.send_nowait(n)
                send.close()

                async def sender() -> None:
                    async for n in receive:
                        step = steps[n % queues]
                        body = json.loads(enrollment_body(f"ap-{portal}-{step.workflow_id}-1-{n}", portal, step))
                        body["inputFields"]["release_after"] = str(t0_ms)
                        response = await stack.hubspot.post(daemon.url, json.dumps(body).encode())
                        assert response.status_code == 200, response.text
                for _ in range(32):
                    nursery.start_soon(sender)
            ingest_s = time.monotonic() - started
            ingest = _delta(_counters(admin, "postgres"), before, webhooks)

            now = dt.datetime.now(dt.UTC)

            def due_now(conn) -> None:  # the bench's own statement: before the reset, not counted
                conn.execute(sa.text("UPDATE action_executions SET not_before = :now"), {"now": now})
                conn.execute(sa.text("UPDATE jobs SET state = 'available', scheduled_at = :now WHERE state = 'scheduled'"),
                             {"now": now})
            await daemon.db.transaction(due_now)
            _reset(admin)
            before = _counters(admin, "postgres")
            started = time.monotonic()
            with trio.fail_after(900):
                while await stack.hubspot.completed() < webhooks:
                    await trio.sleep(0.5)
            release_s = time.monotonic() - started
            await trio.sleep(2)  # the last outcomes
            release = _delta(_counters(admin, "postgres"), before, webhooks)
            top = _top(admin)
        admin.dispose()
    finally:
        cluster.destroy()
    _report(webhooks, queues, ingest, ingest_s, release, release_s, idle, top)


def _report(webhooks, queues, ingest, ingest_s, release, release_s, idle, top) -> None:
    print(f"## Database work per webhook and per release ({webhooks:,} webhooks over {queues} queues, "
          f"{RATE[0]} per {RATE[1]} s each; private PostgreSQL with pg_stat_statements)\n")
    print("| phase | per | statements | commits | WAL bytes | WAL syncs | throughput |")
    print("|---|---|---|---|---|---|---|")
    print(f"| ingest | webhook | {ingest['statements']:.2f} | {ingest['commits']:.3f} | {ingest['wal_bytes']:,.0f} | "
          f"{ingest['wal_syncs']:.3f} | {webhooks / ingest_s:,.0f} webhooks/s |")
    print(f"| release | release | {release['statements']:.2f} | {release['commits']:.3f} | {release['wal_bytes']:,.0f} | "
          f"{release['wal_syncs']:.3f} | {webhooks / release_s:,.0f} releases/s |")
    print(f"| baseline: idle daemon | second | {idle['statements']:.1f} | {idle['commits']:.2f} | {idle['wal_bytes']:,.0f} | "
          f"{idle['wal_syncs']:.2f} | - |")
    print("\nrelease phase, statements by total time:\n")
    print("| calls | total ms | statement |")
    print("|---|---|---|")
    for calls, total, query in top:
        print(f"| {calls:,} | {total:,.0f} | `{query.replace('|', '/')}` |")


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 20_000, int(sys.argv[2]) if len(sys.argv) > 2 else 200)
