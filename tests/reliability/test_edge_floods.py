"""Scenario 10: connection and body floods against the public listener (finding 1 of the edge
review: 1,100 idle connections at 1,024 open files made signed webhooks time out, filled the
log with tracebacks and stopped the watchdog ping; 900 half-sent 65,000-byte bodies grew RSS
by 127 MB for good).

A daemon runs under ``prlimit --nofile=512`` with the systemd watchdog on (a notify socket of
the test's own). Against it: first more idle connections than it has descriptors, then
half-sent bodies beyond its body budget. Through both, signed webhooks (each on a fresh
connection, as HubSpot's would be) must be answered 200, the watchdog pings must go on,
every log line must be one JSON object, and after the floods the daemon's RSS must come back
to within a few MB of where it started.
"""

from __future__ import annotations

import json
import resource
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import trio

from throttled.testing import Hubspot, Step

from .harness import DaemonProcess, reliability_stack

FILES = 512  # the daemon's open-file limit: its derived connection cap is 192
IDLE = 700  # idle connections opened and held (more than FILES)
BODIES = 300  # connections each announcing a 65,000-byte body and sending all but its last byte
BODY_BUDGET = 4 * 1024 * 1024  # 64 bodies of 65,000 bytes
WEBHOOKS = 40  # per phase
RSS_SLACK_MB = 10.0  # measured +5.6 to +8.3 MB after the floods; before the limits +127 MB, kept
PHASE_S = 4.0  # each flood is held at least this long: the watchdog (every 1 s) must ping during it
STEP = Step(workflow_id=81, action_id=8, limit=1, period=1, unit="days")  # nothing released


async def _webhooks(stack, url: str, phase: str) -> list[float]:
    """``WEBHOOKS`` signed enrollments, each on a new connection; their latencies (s)."""
    latencies = []
    async with httpx.AsyncClient(timeout=15, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        hubspot = Hubspot(stack.hubspot.sandbox_url, stack.hubspot.client_secret, http)
        for i in range(WEBHOOKS):
            started = time.monotonic()
            response = await hubspot.enroll(url, f"ap-{stack.portal_id}-81-{phase}-{i}", stack.portal_id, STEP)
            latencies.append(time.monotonic() - started)
            assert response.status_code == 200, (phase, i, response.status_code, response.text)
    return latencies


def _p99_ms(latencies: list[float]) -> float:
    return round(statistics.quantiles(latencies, n=100)[98] * 1000, 1)


async def _hold(url: str, payload: bytes, opened: list[trio.SocketStream], gone: trio.Event) -> None:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        stream = await trio.open_tcp_stream(host, int(port))
    except OSError:
        return
    opened.append(stream)
    try:
        if payload:
            await stream.send_all(payload)
        await gone.wait()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()


async def _watch_pings(sock: trio.socket.SocketType, pings: list[float]) -> None:
    while True:
        message = await sock.recv(4096)
        if message == b"WATCHDOG=1":
            pings.append(time.monotonic())


def _rss_mb(pid: int) -> float:
    return round(psutil.Process(pid).memory_info().rss / 1e6, 1)


async def test_idle_and_half_sent_floods_leave_webhooks_watchdog_and_memory_intact(
        reliability_database, log_dir, report):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))  # the attacker needs them
    notify_dir = Path(tempfile.mkdtemp(prefix="thr-n-", dir="/tmp"))  # a unix socket path stays short
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await sock.bind(str(notify_dir / "notify"))
    pings: list[float] = []
    figures: dict[str, object] = {}
    try:
        async with reliability_stack(reliability_database, log_dir) as stack, trio.open_nursery() as nursery:
            nursery.start_soon(_watch_pings, sock, pings)
            env = stack.daemons[0].env | {"NOTIFY_SOCKET": str(notify_dir / "notify"), "WATCHDOG_USEC": "2000000",
                                          "THROTTLED_BODY_BUDGET": str(BODY_BUDGET)}
            edge = DaemonProcess("daemon-edge", env, log_dir / "daemon-edge.log",
                                 argv_prefix=["prlimit", f"--nofile={FILES}:{FILES}", "--"])
            await edge.start(stack.hubspot.http)
            try:
                pid = edge.process.pid
                quiet = await _webhooks(stack, edge.url, "quiet")
                rss_start = _rss_mb(pid)

                gone, opened = trio.Event(), []
                async with trio.open_nursery() as attack:
                    for _ in range(IDLE):
                        attack.start_soon(_hold, edge.url, b"", opened, gone)
                    await trio.sleep(1.0)
                    pings_before, phase_start = len(pings), trio.current_time()
                    during_idle = await _webhooks(stack, edge.url, "idle")
                    await trio.sleep_until(phase_start + PHASE_S)  # the watchdog pings every 1 s
                    idle_pings = len(pings) - pings_before
                    gone.set()

                head = (f"POST /api/hubspot/action HTTP/1.1\r\nHost: {edge.url[7:]}\r\n"
                        "Content-Type: application/json\r\nContent-Length: 65000\r\n\r\n").encode()
                gone, opened = trio.Event(), []
                async with trio.open_nursery() as attack:
                    for _ in range(BODIES):
                        attack.start_soon(_hold, edge.url, head + b"x" * 64_999, opened, gone)
                    await trio.sleep(1.0)
                    rss_during = _rss_mb(pid)
                    pings_before, phase_start = len(pings), trio.current_time()
                    during_bodies = await _webhooks(stack, edge.url, "bodies")
                    await trio.sleep_until(phase_start + PHASE_S)
                    body_pings = len(pings) - pings_before
                    gone.set()

                await trio.sleep(7.0)  # the memory trim looks every 5 s
                rss_after = _rss_mb(pid)
                metrics = (await stack.hubspot.http.get(edge.admin_url + "/metrics")).text
            finally:
                with trio.CancelScope(shield=True):
                    await edge.terminate(timeout_s=15)
            nursery.cancel_scope.cancel()
    finally:
        sock.close()
        shutil.rmtree(notify_dir, ignore_errors=True)

    lines = edge.log.read_text().splitlines()
    not_json = [line for line in lines if line.strip() and not _is_json(line)]
    counted = {name: _metric(metrics, name) for name in (
        "throttled_http_connections_evicted_total", "throttled_http_connections_refused_total",
        "throttled_http_bodies_refused_total")}
    figures.update({
        "webhook p99 quiet (ms)": _p99_ms(quiet),
        f"webhook p99 during {IDLE} idle connections (ms)": _p99_ms(during_idle),
        f"webhook p99 during {BODIES} half-sent 65,000-byte bodies (ms)": _p99_ms(during_bodies),
        "RSS before / during / after (MB)": f"{rss_start} / {rss_during} / {rss_after}",
        "watchdog pings during the idle / body flood": f"{idle_pings} / {body_pings}",
        "connections evicted / refused, bodies refused": " / ".join(str(int(v)) for v in counted.values()),
        "log lines not JSON": len(not_json),
    })
    report.add("10. connection and body floods (512 open files)", figures)
    assert not not_json, not_json[:5]
    assert idle_pings >= 1 and body_pings >= 1, figures  # the watchdog kept its descriptor and its loop
    assert counted["throttled_http_connections_evicted_total"] > 0, figures
    assert counted["throttled_http_bodies_refused_total"] > 0, figures
    assert rss_after - rss_start <= RSS_SLACK_MB, figures


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


