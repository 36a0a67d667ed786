"""Scenario 4: three daemons on one database behind a HubSpot that retries on any of them;
the cron leader of the moment is killed (SIGKILL) and restarted, twice — no callback completed twice outside
the crash windows, the cleaner's cron job inserted exactly once per slot with no slot missed,
the backlog drained, the windows held."""

from __future__ import annotations

import datetime as dt
import itertools
import time

import psycopg
import trio

from throttled.testing import Step

from .harness import (
    Load,
    database_health,
    drain,
    leftovers,
    releasing_now,
    reliability_stack,
    scale,
    settle,
    verdict,
)

STEPS = [Step(workflow_id=31, action_id=1, limit=25, period=1, unit="seconds"),
         Step(workflow_id=32, action_id=1, limit=30, period=2, unit="seconds", mode="smooth"),
         Step(workflow_id=33, action_id=1, limit=60, period=10, unit="seconds")]
CRON_EVERY_S = 3


def _leader_pid(url: str) -> int | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT owner FROM leaders WHERE name = 'cron' AND expires_at > now()").fetchone()
    return int(row[0].split(":")[1]) if row else None


def _cron_slots(url: str) -> list[tuple[dt.datetime, int]]:
    """(slot start, jobs inserted for it) of every cleaner slot, in order."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT unique_key, count(*) FROM jobs WHERE unique_key LIKE 'cron:cleaner:%' "
                            "GROUP BY unique_key ORDER BY unique_key").fetchall()
    return [(dt.datetime.fromisoformat(key.removeprefix("cron:cleaner:").replace("Z", "+00:00")), n) for key, n in rows]


async def test_three_daemons_one_killed_and_restarted_twice(reliability_database, log_dir, report):
    env = {"THROTTLED_CLEANER_INTERVAL": str(CRON_EVERY_S), "THROTTLED_PORTAL_BUDGET": "33"}  # 100 / 3 daemons
    async with reliability_stack(reliability_database, log_dir, daemons=3, env=env) as stack:
        http = stack.hubspot.http
        load = Load(stack, STEPS, rate=30, prefix="trio")
        in_flight: set[str] = set()
        takeovers: list[float] = []
        await stack.set_faults(latency_s=0.3)  # sends stay in flight long enough to be cut
        async with trio.open_nursery() as nursery:
            nursery.start_soon(load.run, scale(16, 50))
            for _ in range(2):
                await trio.sleep(scale(5, 12))
                leader_pid = _leader_pid(reliability_database)
                victim = next(d for d in stack.daemons if d.process.pid == leader_pid)
                with trio.move_on_after(3):  # while it has a batch on its way to HubSpot
                    while not releasing_now(reliability_database):
                        await trio.sleep(0.01)
                killed_pid = victim.process.pid
                await victim.kill()
                killed = time.monotonic()
                in_flight |= releasing_now(reliability_database)
                with trio.fail_after(10):  # the leader TTL is 2 s
                    while _leader_pid(reliability_database) in (None, killed_pid):
                        await trio.sleep(0.05)
                takeovers.append(time.monotonic() - killed)
                await trio.sleep(1)
                await victim.start(http)
        drained_s = await drain(stack, load.acked, timeout_s=120)
        settled_s = await settle(reliability_database, timeout_s=30)
        await trio.sleep(CRON_EVERY_S)  # one more slot, so the last one counted is complete
        result = verdict(stack, load.acked, STEPS)
        health = database_health(reliability_database)
        slots = _cron_slots(reliability_database)

    gaps = [(b - a).total_seconds() for (a, _), (b, _) in itertools.pairwise(slots)]
    report.add("4. three daemons, the cron leader killed twice", {
        "daemons": 3,
        "acknowledged (200 BLOCK)": result.acknowledged, "completed at HubSpot": result.completed,
        "lost": len(result.lost),
        "in flight at the kills": len(in_flight),
        "sent again (all in flight at a kill)": len(result.repeated),
        "new cron leader after a kill (s)": ", ".join(f"{t:.1f}" for t in takeovers),
        f"cleaner slots ({CRON_EVERY_S} s each)": len(slots),
        "slots with more than one job": sum(1 for _, n in slots if n > 1),
        "slots missed": sum(1 for g in gaps if g > CRON_EVERY_S),
        "worst window / limit": result.windows_text,
        "backlog drained after load (s)": drained_s, "leases settled (s)": settled_s,
        "left pending / releasing / stuck jobs": " / ".join(map(str, leftovers(health))),
    })
    assert result.lost == [] and result.acknowledged >= load.generated > 0
    assert in_flight  # the kills did cut sends on their way to HubSpot
    assert set(result.repeated) <= in_flight
    assert result.window_exceeded == []
    assert len(slots) >= 5 and all(n == 1 for _, n in slots) and all(g == CRON_EVERY_S for g in gaps)
    assert leftovers(health) == (0, 0, 0)
