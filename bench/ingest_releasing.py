"""Ingest while releasing: webhooks/s of one daemon process while it releases at half its
release ceiling, against its own idle figure measured in the same run.

Three processes, as in production: the sandbox HubSpot (``throttled sandbox``), the daemon
(``throttled run``) and ``wrk`` posting pre-signed webhooks (``bench/ingest.py``'s script;
their portal never installs, so what they bring is only stored). Phases:

1. idle: wrk alone → the idle ingest figure;
2. ceiling: 40,000 held enrollments over 20 installed portals × 5 steps at generous rates,
   all due at once → the daemon's release ceiling (completions/s at the sandbox) and its CPU;
3. half: held enrollments over the same 100 steps with limits summing to half that ceiling,
   enough to outlast the phase; once releasing runs, wrk again → ingest while releasing, and
   the releases/s achieved meanwhile.

Target (issue 17): ingest while releasing ≥ 0.6 × idle. Usage:
``THROTTLED_DATABASE_URL=… .venv/bin/python -m bench.ingest_releasing [seconds]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import httpx
import trio

from bench.common import bench_database, markdown_table, store_held
from bench.ingest import HEAVY, SECRET, _wrk
from throttled import logs
from throttled.crypto import generate_key
from throttled.db.engine import Database
from throttled.sandbox import SandboxConfig
from throttled.testing import (
    ACTION_PATH,
    Hubspot,
    Step,
    enrollment_body,
    free_port,
    start_sandbox_process,
    wait_answering,
)

PORTALS, STEPS_PER_PORTAL = 20, 5
CEILING_RECORDS = 40_000


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _store(db: Database, steps: list[tuple[int, Step]], records: int, due: float, tag: str) -> None:
    """``records`` held enrollments spread over ``steps``, all due at ``due`` (epoch s)."""

    def bodies():
        for i in range(records):
            portal, step = steps[i % len(steps)]
            body = json.loads(enrollment_body(f"ap-{portal}-{step.workflow_id}-{tag}{i}", portal, step))
            body["inputFields"]["release_after"] = str(int(due * 1000))
            yield body

    await store_held(db, bodies())


def _steps(limit: int, workflow_base: int) -> list[tuple[int, Step]]:
    return [(3000 + p, Step(workflow_id=workflow_base + s, action_id=1, limit=limit, period=1, unit="seconds"))
            for p in range(PORTALS) for s in range(STEPS_PER_PORTAL)]


async def main(seconds: float) -> None:
    logs.configure("WARNING")
    with bench_database() as url:
        await _run(url, seconds)


async def _run(url: str, seconds: float) -> None:
    daemon_port = free_port()
    daemon_url = f"http://127.0.0.1:{daemon_port}"
    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=30) as http:
        sandbox_url = await start_sandbox_process(nursery, http, SandboxConfig(client_id="bench", client_secret=SECRET,
                                                                                 app_id=1000))
        daemon = await nursery.start(partial(trio.run_process, [sys.executable, "-m", "throttled", "run"],
                                             env=_daemon_env(url, daemon_port, sandbox_url), check=False,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        await wait_answering(http, f"{daemon_url}/readyz", timeout_s=60)
        hubspot = Hubspot(sandbox_url, SECRET, http)
        for p in range(PORTALS):
            await hubspot.install(daemon_url, 3000 + p)
        db = Database(url, pool_size=4)
        try:
            rows, ratio, ceiling = await _phases(db, hubspot, daemon.pid, daemon_url, seconds)
        finally:
            db.dispose()
            daemon.terminate()  # a graceful stop, then the sandbox goes with the nursery
            await daemon.wait()
            nursery.cancel_scope.cancel()
    print(f"## Ingest while releasing ({seconds:.0f} s of wrk per phase, {HEAVY} connections; daemon, sandbox, "
          "PostgreSQL and wrk are separate processes on the same cores)\n")
    print(markdown_table(["phase", "webhooks/s", "p99 ms", "releases/s", "daemon CPU (cores)", "errors"], rows))
    print(f"\nwhile releasing / idle = {ratio:.2f} (target ≥ 0.6); release ceiling of this daemon process: "
          f"{ceiling:,.0f}/s")


def _daemon_env(url: str, port: int, sandbox_url: str) -> dict[str, str]:
    """``throttled run``'s environment: this bench's database, port and sandbox."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("THROTTLED_", "HUBSPOT_"))}
    return base | {
        "THROTTLED_DATABASE_URL": url, "THROTTLED_BIND": f"127.0.0.1:{port}", "THROTTLED_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "THROTTLED_ADMIN_BIND": "127.0.0.1:0", "HUBSPOT_CLIENT_ID": "bench", "HUBSPOT_CLIENT_SECRET": SECRET,
        "HUBSPOT_API_BASE": sandbox_url, "HUBSPOT_AUTHORIZE_URL": f"{sandbox_url}/oauth/authorize",
        "THROTTLED_ENCRYPTION_KEY": generate_key(), "THROTTLED_LOG_LEVEL": "WARNING", "THROTTLED_WORKERS": "64",
        "THROTTLED_DB_POOL_SIZE": "16", "THROTTLED_OAUTH_CALLBACKS_PER_MINUTE": "1000",
    }


async def _phases(db: Database, hubspot: Hubspot, pid: int, daemon_url: str, seconds: float):
    rows = []
    cpu0, t0 = _cpu_s(pid), time.monotonic()
    idle = await _wrk(daemon_url, ACTION_PATH, seconds, HEAVY, "ri")
    idle_cpu = (_cpu_s(pid) - cpu0) / (time.monotonic() - t0)
    rows.append(["idle: ingest only", f"{idle['rate']:,.0f}", f"{idle['p99_ms']:.1f}", "0", f"{idle_cpu:.2f}",
                 str(idle["errors"] + idle["non2xx"])])

    # The release ceiling: a backlog due at once on generous steps, nothing else to do.
    due = time.time() + 5 + CEILING_RECORDS / 1500
    await _store(db, _steps(100_000, 0), CEILING_RECORDS, due, "c")
    await trio.sleep(max(0.0, due - time.time()))
    start, cpu0, t0 = await hubspot.completed(), _cpu_s(pid), time.monotonic()
    with trio.fail_after(300):
        while await hubspot.completed() - start < CEILING_RECORDS:
            await trio.sleep(0.5)
    elapsed = time.monotonic() - t0
    ceiling = CEILING_RECORDS / elapsed
    rows.append(["release ceiling: releasing only", "-", "-", f"{ceiling:,.0f}",
                 f"{(_cpu_s(pid) - cpu0) / elapsed:.2f}", "-"])

    # Half the ceiling, with ingest on top once releasing runs.
    per_step = max(1, round(ceiling / 2 / (PORTALS * STEPS_PER_PORTAL)))
    records = int(per_step * PORTALS * STEPS_PER_PORTAL * (seconds + 20))
    due = time.time() + 5 + records / 1500
    await _store(db, _steps(per_step, 100), records, due, "h")
    await trio.sleep(max(0.0, due - time.time()) + 5)  # releasing has settled
    start, cpu0, t0 = await hubspot.completed(), _cpu_s(pid), time.monotonic()
    busy = await _wrk(daemon_url, ACTION_PATH, seconds, HEAVY, "rb")
    elapsed = time.monotonic() - t0
    released = (await hubspot.completed() - start) / elapsed
    rows.append([f"while releasing at half the ceiling ({per_step * PORTALS * STEPS_PER_PORTAL:,}/s configured)",
                 f"{busy['rate']:,.0f}", f"{busy['p99_ms']:.1f}", f"{released:,.0f}",
                 f"{(_cpu_s(pid) - cpu0) / elapsed:.2f}", str(busy["errors"] + busy["non2xx"])])
    return rows, busy["rate"] / idle["rate"], ceiling


if __name__ == "__main__":
    trio.run(main, float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
