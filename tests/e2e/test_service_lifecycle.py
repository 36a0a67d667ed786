"""The daemon as a service: sd_notify order, a watchdog that stops when the scheduler is
stuck, and SIGTERM under load — exit 0, nothing lost, no lease left behind."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from functools import partial

import httpx
import psycopg
import trio

from throttled.crypto import generate_key
from throttled.daemon import run_daemon
from throttled.db.engine import libpq_url
from throttled.sandbox import SandboxConfig, serve_sandbox
from throttled.service.systemd import SystemdNotifier
from throttled.settings import load_settings
from throttled.testing import Hubspot, Step, free_port

STEP = Step(workflow_id=88, action_id=2, limit=40, period=1, unit="seconds")


async def _datagrams(sock: socket.socket, into: list[str]) -> None:
    while True:
        await trio.lowlevel.wait_readable(sock)
        into.append(sock.recv(4096).decode())


async def test_notify_order_and_watchdog_withheld_while_the_scheduler_is_stuck(empty_database, tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # ping every 0.5 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    received: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.setblocking(False)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_datagrams, server, received)
            port = free_port()
            settings = load_settings(database_url=empty_database, bind=f"127.0.0.1:{port}", admin_bind="127.0.0.1:0",
                                     hubspot_client_secret="s" * 20, encryption_key=generate_key(), poll_interval_s=0.2)
            daemon = await nursery.start(partial(run_daemon, settings, empty_database, notifier=SystemdNotifier(path)))
            await trio.sleep(1.6)
            pings_alive = received.count("WATCHDOG=1")
            # Stick the scheduler: hold an exclusive lock on the job table so its claim blocks.
            with psycopg.connect(libpq_url(empty_database), autocommit=False) as locker:
                locker.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
                await trio.sleep(0.6)  # let the scheduler run into the lock
                before = received.count("WATCHDOG=1")
                await trio.sleep(2.0)
                pings_stuck = received.count("WATCHDOG=1") - before
            await trio.sleep(1.6)
            pings_after = received.count("WATCHDOG=1") - before - pings_stuck
            daemon.request_stop()
            with trio.fail_after(15):
                while "STOPPING=1" not in received:
                    await trio.sleep(0.05)
            await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
    assert received[0] == "READY=1"
    assert pings_alive >= 2 and pings_stuck == 0 and pings_after >= 1
    assert any(m.startswith("STATUS=pending") for m in received)
    assert received.index("STOPPING=1") > received.index("READY=1")
    # systemd is told how long the stop may take: the grace (10 s) plus 10 s for the hand-backs
    assert received[received.index("STOPPING=1") + 1] == "EXTEND_TIMEOUT_USEC=20000000"


async def test_a_graceful_stop_takes_one_grace_in_all_not_one_per_step(empty_database):
    # Field faults, item 4: the batcher, the running jobs and the batches on the wire were each
    # given the whole grace in turn — three times THROTTLED_SHUTDOWN_GRACE, which with the
    # default 10 s met the unit's TimeoutStopSec=30 exactly.
    grace = 2.0
    config = SandboxConfig(client_id="cid", client_secret="s" * 20, app_id=1)
    async with trio.open_nursery() as nursery:
        sandbox = await nursery.start(serve_sandbox, config)
        port = free_port()
        settings = load_settings(database_url=empty_database, bind=f"127.0.0.1:{port}", admin_bind="127.0.0.1:0",
                                 public_url=f"http://127.0.0.1:{port}", hubspot_client_id="cid",
                                 hubspot_client_secret="s" * 20, hubspot_api_base=sandbox.url,
                                 hubspot_authorize_url=f"{sandbox.url}/oauth/authorize", encryption_key=generate_key(),
                                 shutdown_grace_s=grace, poll_interval_s=0.2)
        stopped = trio.Event()

        async def daemon_then_signal(task_status=trio.TASK_STATUS_IGNORED):
            await run_daemon(settings, empty_database, task_status=task_status)
            stopped.set()

        daemon = await nursery.start(daemon_then_signal)
        async with httpx.AsyncClient() as http:
            hubspot = Hubspot(sandbox.url, "s" * 20, http)
            await hubspot.install(daemon.url)
            sandbox.state.set_faults({"stall_s": 30.0})  # a batch on the wire that will not end in time
            for i in range(5):
                assert (await hubspot.enroll(daemon.url, f"ap-62515-88-2-stop{i}", 62515, STEP)).status_code == 200
            with trio.fail_after(10):
                while not sandbox.state.completions:
                    await trio.sleep(0.05)
        with psycopg.connect(libpq_url(empty_database), autocommit=False) as locker:
            # The queue's next worker run waits on its row: a running job that cannot finish.
            locker.execute("SELECT 1 FROM queues FOR UPDATE")
            with trio.fail_after(10):
                while not daemon.scheduler.running:
                    await trio.sleep(0.01)
            started = trio.current_time()
            daemon.request_stop()
            await trio.sleep(grace + 0.5)  # the whole grace is spent waiting for that job …
            locker.rollback()  # … which ends now; the stalled batch must get no grace of its own
            with trio.fail_after(6 * grace):
                await stopped.wait()
            took = trio.current_time() - started
        nursery.cancel_scope.cancel()
    # One grace for all steps: done soon after the job ends (before: a grace per step, so the
    # stalled batch's drain took another full grace after it).
    assert took < grace + 1.5, took


def _daemon_env(database_url: str, sandbox_url: str, port: int, secret: str, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THROTTLED_", "HUBSPOT_", "NOTIFY_", "WATCHDOG_"))}
    env.update({
        "THROTTLED_DATABASE_URL": database_url, "THROTTLED_BIND": f"127.0.0.1:{port}",
        "THROTTLED_ADMIN_BIND": "127.0.0.1:0", "THROTTLED_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "HUBSPOT_CLIENT_ID": "cid", "HUBSPOT_CLIENT_SECRET": secret, "HUBSPOT_API_BASE": sandbox_url,
        "HUBSPOT_AUTHORIZE_URL": f"{sandbox_url}/oauth/authorize", "THROTTLED_ENCRYPTION_KEY": key,
        "THROTTLED_LOG_LEVEL": "WARNING",
    })
    return env


async def test_sigterm_under_load_exits_0_loses_nothing_and_leaves_no_lease(empty_database):
    secret, key = "secret-" + secrets.token_hex(8), generate_key()
    config = SandboxConfig(client_id="cid", client_secret=secret, app_id=1, default_portal_id=62515)
    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=10) as http:
        sandbox = await nursery.start(serve_sandbox, config)
        port = free_port()
        env = _daemon_env(empty_database, sandbox.url, port, secret, key)
        process = await trio.lowlevel.open_process([sys.executable, "-m", "throttled", "run"], env=env)
        daemon_url = f"http://127.0.0.1:{port}"
        with trio.fail_after(20):
            while True:
                try:
                    if (await http.get(daemon_url + "/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await trio.sleep(0.1)
        hubspot = Hubspot(sandbox.url, secret, http)
        portal = await hubspot.install(daemon_url)
        answers: dict[str, int] = {}

        async def sender(n: int) -> None:
            for i in range(60):
                cid = f"ap-{portal}-{n}-{i}"
                try:
                    answers[cid] = (await hubspot.enroll(daemon_url, cid, portal, STEP)).status_code
                except httpx.HTTPError:
                    answers[cid] = 0  # connection refused after the listener closed: HubSpot retries
                await trio.sleep(0.01)

        async with trio.open_nursery() as load:
            for n in range(10):
                load.start_soon(sender, n)
            await trio.sleep(1.0)
            process.send_signal(signal.SIGTERM)  # in the middle of the load
        with trio.fail_after(30):
            exit_code = await process.wait()
        acknowledged = {cid for cid, status in answers.items() if status == 200}

        with psycopg.connect(libpq_url(empty_database)) as conn:
            stored = {r[0] for r in conn.execute("SELECT callback_id FROM action_executions")}
            executing = conn.execute("SELECT count(*) FROM jobs WHERE state = 'executing'").fetchone()[0]
            releasing = conn.execute("SELECT count(*) FROM action_executions WHERE state = 'releasing'").fetchone()[0]

        # A second daemon finishes the backlog: every acknowledged enrollment completes once.
        settings = load_settings(database_url=empty_database, bind=f"127.0.0.1:{free_port()}", admin_bind="127.0.0.1:0",
                                 public_url=daemon_url, hubspot_client_id="cid", hubspot_client_secret=secret,
                                 hubspot_api_base=sandbox.url, encryption_key=key)
        await nursery.start(run_daemon, settings, empty_database)
        with trio.fail_after(30):
            while {c["callbackId"] for c in await hubspot.completions()} < acknowledged:
                await trio.sleep(0.2)
        completed = [c["callbackId"] for c in await hubspot.completions()]
        nursery.cancel_scope.cancel()

    assert exit_code == 0
    assert len(acknowledged) > 50 and any(status != 200 for status in answers.values())  # it stopped mid-load
    assert acknowledged <= stored  # 0 lost: every 200 BLOCK was committed
    assert executing == 0 and releasing == 0  # nothing left leased
    assert len(completed) == len(set(completed))  # none completed twice


def test_a_taken_address_is_one_line_naming_the_listener_and_the_address(empty_database):
    # A new-user trial: "throttled: error: Address already in use", without saying which.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _daemon_env(empty_database, "http://127.0.0.1:9", free_port(), "s" * 20, generate_key())
        env["THROTTLED_BIND"] = f"127.0.0.1:{port}"
        done = subprocess.run([sys.executable, "-m", "throttled", "run"], env=env, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"throttled: error: cannot listen on 127.0.0.1:{port} (THROTTLED_BIND): Address already in use")
