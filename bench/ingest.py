"""Ingest benchmark: signed webhooks per second and latency through the real endpoint, with
two baselines measured in the same run on the same server stack (Quart-Trio on Hypercorn):

- ceiling: a trivial JSON endpoint, no signature, no database;
- commit per request: signature check + parse + one transaction per webhook (what a simple
  implementation does, no batcher);
- throttled: the real daemon (signature, parse, group commit by the batcher, reply).

Then the daemon as its own process (``throttled run``), one and two of them sharing the
port (``THROTTLED_REUSE_PORT``, one per core): webhooks/s with 64 connections.

Load comes from ``wrk`` (Debian's package; a Python client saturates first) with a Lua
script replaying pre-signed requests with distinct callback ids. A light run (few
connections) gives the latency at a moderate rate. Usage:
``THROTTLED_DATABASE_URL=… .venv/bin/python bench/ingest.py [seconds]``; prints a table.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import httpx
import trio
from quart import jsonify, request
from quart_trio import QuartTrio

from bench.common import bench_database, daemon_settings, markdown_table
from throttled.clock import WallClock
from throttled.crypto import generate_key
from throttled.daemon import run_daemon
from throttled.db.engine import Database
from throttled.db.schema import migrate
from throttled.hubspot.signatures import SignedRequest, sign_v2, verify
from throttled.ingest.payload import parse_enrollment
from throttled.ingest.store import store_enrollments
from throttled.testing import Step, enrollment_body, free_port
from throttled.throttle.block_length import BlockLimits

STEP = Step(workflow_id=1, action_id=1, limit=100_000, period=1, unit="seconds")  # the portal never installs: nothing is released
BLOCKS = BlockLimits(dt.timedelta(days=7), dt.timedelta(days=30))
SECRET = "bench-secret-" + secrets.token_hex(8)
PORTAL = 4242
BLOCK = {"outputFields": {"hs_execution_state": "BLOCK", "hs_expiration_duration": "P7D"}}
HEAVY, LIGHT = 64, 4  # wrk connections


def _lua(url: str, path: str, count: int, tag: str, threads: int, folder: Path) -> str:
    """A wrk script: each thread replays its own slice of pre-signed, distinct webhooks,
    read from a data file (Lua limits the constants one chunk may hold)."""
    data = folder / "requests.tsv"
    with data.open("w") as out:
        for i in range(count):
            body = enrollment_body(f"ap-{PORTAL}-{tag}-{i}", PORTAL, STEP)
            out.write(f"{sign_v2(SECRET, SignedRequest('POST', url + path, body))}\t{body.decode()}\n")
    return f"""
local counter = 0
function setup(thread) thread:set('id', counter); counter = counter + 1 end
function init(args)
  reqs = {{}}
  for line in io.lines('{data}') do
    local sig, body = line:match('([^\t]+)\t(.*)')
    reqs[#reqs + 1] = wrk.format('POST', '{path}',
      {{['Content-Type'] = 'application/json', ['X-HubSpot-Signature'] = sig}}, body)
  end
  n = 0; stride = math.floor(#reqs / {threads})
end
function request() n = n + 1; return reqs[(id * stride + (n % stride)) + 1] end
function done(summary, latency, requests)
  io.write(string.format('{{"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f, "errors": %d, "non2xx": %d}}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))
end"""


async def _wrk(url: str, path: str, seconds: float, connections: int, tag: str) -> dict:
    threads = 2
    folder = Path(tempfile.mkdtemp())
    script = folder / "load.lua"
    script.write_text(_lua(url, path, 60_000, tag, threads, folder))
    result = await trio.run_process(["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "5s",
                                     "-s", str(script), url + path], capture_stdout=True, capture_stderr=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed: {result.stdout.decode()[-500:]} {result.stderr.decode()[-500:]}")
    stats = json.loads(result.stdout.decode().strip().splitlines()[-1])
    stats["rate"] = stats["requests"] / stats["seconds"]
    return stats


def _ceiling_app() -> QuartTrio:
    app = QuartTrio("ceiling")

    @app.post("/echo")
    async def echo():
        await request.get_data()
        return jsonify(BLOCK)

    return app


def _per_request_app(db: Database, url: str) -> QuartTrio:
    app = QuartTrio("commit-per-request")
    clock = WallClock()

    @app.post("/api/hubspot/action")
    async def action():
        body = await request.get_data()
        verify(SECRET, SignedRequest("POST", url + "/api/hubspot/action", body), request.headers,
               now_ms=int(clock.now().timestamp() * 1000))
        await db.transaction(store_enrollments, [parse_enrollment(body)], clock.now(), BLOCKS)
        return jsonify(BLOCK)

    return app


async def _serve_and_load(app, path: str, seconds: float, tag: str) -> tuple[dict, dict]:
    from throttled.web.hypercorn_patch import serve

    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, app, f"127.0.0.1:{free_port()}")
        heavy = await _wrk(url, path, seconds, HEAVY, tag + "h")
        light = await _wrk(url, path, seconds, LIGHT, tag + "l")
        nursery.cancel_scope.cancel()
    return heavy, light


async def main(seconds: float) -> list[list[str]]:
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    rows = []
    ceiling = await _serve_and_load(_ceiling_app(), "/echo", seconds, "c")
    with bench_database() as url:
        db = Database(url, pool_size=10)
        db.transaction_sync(migrate)
        per_request = await _per_request(db, seconds)
        db.dispose()
    with bench_database() as url:
        ours, sizes = await _daemon(url, seconds)
    for name, (heavy, light) in (("ceiling: trivial JSON POST, no DB", ceiling),
                                 ("commit per request (no batcher)", per_request),
                                 ("throttled: signed, group commit", ours)):
        rows.append([name, f"{heavy['rate']:,.0f}", f"{heavy['p50_ms']:.1f}", f"{heavy['p99_ms']:.1f}",
                     f"{light['rate']:,.0f}", f"{light['p99_ms']:.1f}", str(heavy["errors"] + heavy["non2xx"])])
    with bench_database() as url:
        processes = {n: await _processes(url, seconds, n) for n in (1, 2)}
    ratio_c = ours[0]["rate"] / ceiling[0]["rate"]
    ratio_p = ours[0]["rate"] / per_request[0]["rate"]
    print(f"## Ingest ({seconds:.0f} s per run, wrk -t2, {HEAVY} and {LIGHT} connections)\n")
    print(markdown_table(["endpoint", f"req/s ({HEAVY} conn)", "p50 ms", "p99 ms", f"req/s ({LIGHT} conn)",
                          f"p99 ms ({LIGHT} conn)", "errors"], rows))
    print(f"\nthrottled / ceiling = {ratio_c:.2f} (target ≥ 0.9); throttled / commit-per-request = {ratio_p:.2f} "
          f"(target ≥ 2); batcher: {len(sizes)} commits, mean {sum(sizes) / max(len(sizes), 1):.1f}, "
          f"max {max(sizes, default=0)} per commit")
    print(f"\ndaemon processes sharing the port (`throttled run`, THROTTLED_REUSE_PORT, {HEAVY} connections): "
          f"1 → {processes[1]['rate']:,.0f} req/s, 2 → {processes[2]['rate']:,.0f} req/s "
          f"(errors {processes[1]['errors'] + processes[2]['errors']}); two / one = "
          f"{processes[2]['rate'] / processes[1]['rate']:.2f} (target ≥ 1.5)")
    return rows


async def _processes(url: str, seconds: float, n: int) -> dict:
    """``n`` daemon processes bound to one port with SO_REUSEPORT, loaded by wrk."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THROTTLED_", "HUBSPOT_"))} | {
        "THROTTLED_DATABASE_URL": url, "THROTTLED_BIND": f"127.0.0.1:{port}",
        "THROTTLED_PUBLIC_URL": f"http://127.0.0.1:{port}", "THROTTLED_ADMIN_BIND": "127.0.0.1:0",
        "HUBSPOT_CLIENT_ID": "bench", "HUBSPOT_CLIENT_SECRET": SECRET, "THROTTLED_ENCRYPTION_KEY": generate_key(),
        "THROTTLED_REUSE_PORT": "true", "THROTTLED_LOG_LEVEL": "WARNING",
    }
    run = partial(trio.run_process, [sys.executable, "-m", "throttled", "run"], env=env, check=False,
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    async with trio.open_nursery() as nursery:
        daemons = [await nursery.start(run) for _ in range(n)]
        async with httpx.AsyncClient() as http:
            with trio.fail_after(60):
                ready = 0
                while ready < 10 * n:  # fresh connections land on every process once all listen
                    try:
                        answer = await http.get(f"http://127.0.0.1:{port}/readyz", headers={"Connection": "close"})
                        ready = ready + 1 if answer.status_code == 200 else 0
                    except httpx.HTTPError:
                        ready = 0
                    await trio.sleep(0.1)
        await trio.sleep(1)
        result = await _wrk(f"http://127.0.0.1:{port}", "/api/hubspot/action", seconds, HEAVY, f"p{n}")
        for daemon in daemons:
            daemon.terminate()  # a graceful stop; the nursery waits for them
    return result


async def _per_request(db: Database, seconds: float):
    from throttled.web.hypercorn_patch import serve

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, _per_request_app(db, url), f"127.0.0.1:{port}")
        heavy = await _wrk(url, "/api/hubspot/action", seconds, HEAVY, "ph")
        light = await _wrk(url, "/api/hubspot/action", seconds, LIGHT, "pl")
        nursery.cancel_scope.cancel()
    return heavy, light


async def _daemon(url: str, seconds: float):
    port = free_port()
    settings = daemon_settings(url, port, SECRET)
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(run_daemon, settings, url)
        heavy = await _wrk(daemon.url, "/api/hubspot/action", seconds, HEAVY, "dh")
        light = await _wrk(daemon.url, "/api/hubspot/action", seconds, LIGHT, "dl")
        sizes = list(daemon.batcher.batch_sizes)
        nursery.cancel_scope.cancel()
    return (heavy, light), sizes


if __name__ == "__main__":
    trio.run(main, float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
