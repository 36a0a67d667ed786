"""The reliability harness: real daemons as subprocesses (``python -m throttled run``), the
sandbox HubSpot over loopback HTTP, HubSpot-like webhook load, and the ledger that checks,
at the end, what HubSpot saw against what the daemons acknowledged.

Nothing here is mocked: a daemon is killed with SIGKILL, the database is stopped with
``pg_ctl``, faults are set on the sandbox through its HTTP control route.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import os
import secrets
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import psycopg
import trio

from throttled.crypto import generate_key
from throttled.sandbox import SandboxConfig, serve_sandbox
from throttled.testing import Hubspot, Step, free_port, max_per_window

FULL = os.environ.get("THROTTLED_RELIABILITY", "").lower() == "full"
UTC = dt.UTC


def scale(short: float, full: float):
    """``full`` when ``THROTTLED_RELIABILITY=full`` (``make reliability``), else ``short`` (CI)."""
    return full if FULL else short


# Timings that let faults play out in seconds instead of minutes; every one is a documented
# setting. The release lease must outlast a HubSpot call (timeout) plus a flush.
FAST_RECOVERY = {
    "THROTTLED_POLL_INTERVAL": "0.2",
    "THROTTLED_JOB_LEASE": "3",
    "THROTTLED_RELEASE_LEASE": "8",
    "THROTTLED_HUBSPOT_TIMEOUT": "2",
    "THROTTLED_LEADER_TTL": "2",
    "THROTTLED_SHUTDOWN_GRACE": "3",
    "THROTTLED_LOG_LEVEL": "DEBUG",
}


class Secrets:
    """Everything the session must never see leak, and everything to look in: daemon log
    files, response bodies and error messages collected by the scenarios."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.logs: list[Path] = []
        self.texts: list[str] = []

    def leaks(self) -> list[tuple[str, str]]:
        """``(where, secret prefix)`` for every secret found in a log or a recorded text."""
        found = []
        haystacks = [(str(p), p.read_text(errors="replace")) for p in self.logs if p.exists()]
        haystacks.append(("responses", "\n".join(self.texts)))
        for where, text in haystacks:
            found += [(where, value[:6] + "…") for value in self.values if value in text]
        return found

    def scanned_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.logs if p.exists()) + sum(len(t) for t in self.texts)


SESSION_SECRETS = Secrets()


class DaemonProcess:
    """One ``python -m throttled run`` subprocess on fixed loopback ports, restartable.

    Its stdout and stderr go to ``log`` (appended across restarts).
    """

    def __init__(self, name: str, env: dict[str, str], log: Path, argv_prefix: Sequence[str] = ()) -> None:
        self.name = name
        self.argv_prefix = list(argv_prefix)  # e.g. prlimit: the command runs it, which execs the daemon
        self.port, self.admin_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.env = env | {"THROTTLED_BIND": f"127.0.0.1:{self.port}", "THROTTLED_PUBLIC_URL": self.url,
                          "THROTTLED_ADMIN_BIND": f"127.0.0.1:{self.admin_port}"}
        self.log = log
        self.process: trio.Process | None = None
        self.starts = 0

    async def start(self, http: httpx.AsyncClient, timeout_s: float = 30) -> float:
        """Start and wait for ``/readyz``; returns the seconds it took."""
        started = time.monotonic()
        with self.log.open("ab") as sink:
            self.process = await trio.lowlevel.open_process(
                [*self.argv_prefix, sys.executable, "-m", "throttled", "run"], env=self.env, stdout=sink, stderr=sink)
        self.starts += 1
        with trio.fail_after(timeout_s):
            while not await self.ready(http):
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log}")
                await trio.sleep(0.05)
        return time.monotonic() - started

    async def ready(self, http: httpx.AsyncClient) -> bool:
        try:
            return (await http.get(self.url + "/readyz", timeout=2)).status_code == 200
        except httpx.HTTPError:
            return False

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as on an OOM kill or a power cut of the process."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def terminate(self, timeout_s: float = 20) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        with trio.fail_after(timeout_s):
            return await self.process.wait()


@dataclasses.dataclass
class ReliabilityStack:
    """A sandbox, daemons on one database and one installed portal."""

    hubspot: Hubspot
    sandbox: object  # RunningSandbox: .url, .state
    daemons: list[DaemonProcess]
    portal_id: int
    admin_token: str
    database_url: str

    def record_response(self, text: str) -> None:
        """Keep a response body or error text for the secrets scan."""
        SESSION_SECRETS.texts.append(text)

    async def set_faults(self, **faults) -> None:
        """Set sandbox faults over its control route (``POST /_sandbox/faults`` merges them)."""
        response = await self.hubspot.http.post(f"{self.sandbox.url}/_sandbox/faults", json=faults)
        response.raise_for_status()

    async def clear_faults(self) -> None:
        response = await self.hubspot.http.delete(f"{self.sandbox.url}/_sandbox/faults")
        response.raise_for_status()


def daemon_env(database_url: str, sandbox_url: str, client_secret: str, key: str, admin_token: str,
               extra: dict[str, str] | None = None) -> dict[str, str]:
    """The daemon's environment: this process's, without any THROTTLED_/HUBSPOT_ variable,
    plus the stack's settings and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THROTTLED_", "HUBSPOT_", "NOTIFY_", "WATCHDOG_"))}
    env |= {
        "THROTTLED_DATABASE_URL": database_url, "HUBSPOT_CLIENT_ID": "reliability-client",
        "HUBSPOT_CLIENT_SECRET": client_secret, "HUBSPOT_API_BASE": sandbox_url,
        "HUBSPOT_AUTHORIZE_URL": f"{sandbox_url}/oauth/authorize", "THROTTLED_ENCRYPTION_KEY": key,
        "THROTTLED_ADMIN_TOKEN": admin_token, **FAST_RECOVERY, **(extra or {}),
    }
    return env


@asynccontextmanager
async def reliability_stack(database_url: str, log_dir: Path, *, daemons: int = 1, env: dict[str, str] | None = None,
                            portal_id: int = 70001, sandbox_config: dict | None = None):
    """Start the sandbox (in this process) and ``daemons`` daemon subprocesses on
    ``database_url``; install one portal through the real OAuth redirects. Yields a
    :class:`ReliabilityStack`; every daemon is stopped (SIGTERM, then SIGKILL) on exit.

    Registers the stack's secrets and log files in :data:`SESSION_SECRETS`.
    """
    client_secret = "reliability-secret-" + secrets.token_hex(12)
    key, admin_token = generate_key(), "admin-" + secrets.token_hex(16)
    config = SandboxConfig(client_id="reliability-client", client_secret=client_secret, app_id=4343,
                           default_portal_id=portal_id, **(sandbox_config or {}))
    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as http:
        sandbox = await nursery.start(partial(serve_sandbox, config))
        base_env = daemon_env(database_url, sandbox.url, client_secret, key, admin_token, env)
        running = []
        for n in range(daemons):
            log = log_dir / f"daemon-{n}.log"
            SESSION_SECRETS.logs.append(log)
            running.append(DaemonProcess(f"daemon-{n}", base_env, log))
        SESSION_SECRETS.values.update({client_secret, key, admin_token})
        try:
            async with trio.open_nursery() as starting:
                for daemon in running:
                    starting.start_soon(daemon.start, http)
            hubspot = Hubspot(sandbox.url, client_secret, http)
            installed = await hubspot.install(running[0].url)
            yield ReliabilityStack(hubspot, sandbox, running, installed, admin_token, database_url)
        finally:
            SESSION_SECRETS.values.update(sandbox.state.issued_tokens())
            with trio.CancelScope(shield=True):
                for daemon in running:
                    try:
                        await daemon.terminate(timeout_s=10)
                    except trio.TooSlowError:
                        await daemon.kill()
            nursery.cancel_scope.cancel()


class Load:
    """Signed webhook load that behaves like HubSpot: new enrollments at ``rate`` per second
    spread over ``targets`` (daemon base URLs, round robin) and ``steps``; an enrollment not
    answered 200 (a 5xx, a refused connection, a timeout) is sent again after ``retry_s``
    until it is, like HubSpot retrying a failed action call.

    Records ``acked`` (callback id → queue id), ``statuses`` (status → count, 0 = no answer),
    each 503's ``Retry-After`` and the time of each 200.
    """

    def __init__(self, stack: ReliabilityStack, steps: Sequence[Step], *, rate: float, prefix: str,
                 targets: Sequence[str] | None = None, retry_s: float = 0.25) -> None:
        self.stack, self.steps, self.rate, self.prefix, self.retry_s = stack, list(steps), rate, prefix, retry_s
        self.targets = list(targets or [d.url for d in stack.daemons])
        self.acked: dict[str, str] = {}
        self.statuses: Counter[int] = Counter()
        self.unavailable: list[tuple[float, str | None]] = []  # (monotonic time, Retry-After) of each 503
        self.accepted_at: list[float] = []  # monotonic time of each 200
        self.generated = 0
        self._rotation = itertools.count()
        self._limit = trio.CapacityLimiter(32)

    async def run(self, duration_s: float) -> None:
        """Generate for ``duration_s`` seconds, then wait until every enrollment is answered 200."""
        async with trio.open_nursery() as nursery:
            deadline = trio.current_time() + duration_s
            interval = 1 / self.rate
            n = 0
            while trio.current_time() < deadline:
                step = self.steps[n % len(self.steps)]
                nursery.start_soon(self._enroll, f"{self.prefix}-{n}", step)
                n += 1
                await trio.sleep(interval)
            self.generated = n

    async def _enroll(self, callback_id: str, step: Step) -> None:
        portal = self.stack.portal_id
        with trio.fail_after(120):
            while True:
                target = self.targets[next(self._rotation) % len(self.targets)]
                async with self._limit:
                    try:
                        response = await self.stack.hubspot.enroll(target, callback_id, portal, step)
                        status = response.status_code
                    except httpx.HTTPError:
                        response, status = None, 0
                self.statuses[status] += 1
                if status == 200:
                    self.accepted_at.append(time.monotonic())
                    self.acked[callback_id] = step.queue_id(portal)
                    return
                if response is not None:
                    self.stack.record_response(response.text)
                if status == 503:
                    self.unavailable.append((time.monotonic(), response.headers.get("Retry-After")))
                elif status not in (0, 502, 504):
                    raise AssertionError(f"{callback_id}: unexpected {status} {response.text[:200]}")
                await trio.sleep(self.retry_s)


@dataclasses.dataclass
class Verdict:
    """What HubSpot saw against what was acknowledged."""

    acknowledged: int
    completed: int
    lost: list[str]
    repeated: dict[str, int]          # callback id -> completion requests after the first
    worst_window: dict[str, tuple[int, int]]  # queue id -> (most in a window, limit)

    @property
    def window_exceeded(self) -> list[str]:
        return [q for q, (most, limit) in self.worst_window.items() if most > limit]

    @property
    def windows_text(self) -> str:
        """``most/limit`` per queue, for the report."""
        return ", ".join(f"{most}/{limit}" for most, limit in self.worst_window.values())


async def drain(stack: ReliabilityStack, expected: Iterable[str], timeout_s: float) -> float:
    """Wait until the sandbox completed every id in ``expected``; returns seconds waited."""
    expected = set(expected)
    started = time.monotonic()
    with trio.fail_after(timeout_s):
        while not expected <= {c["callbackId"] for c in stack.sandbox.state.completions}:
            await trio.sleep(0.2)
    return time.monotonic() - started


def verdict(stack: ReliabilityStack, acked: dict[str, str], steps: Sequence[Step]) -> Verdict:
    """Check the sandbox's completions against ``acked`` (callback id → queue id)."""
    state = stack.sandbox.state
    first: dict[str, float] = {}
    for completion in state.completions:
        first.setdefault(completion["callbackId"], completion["completedAt"])
    by_queue: dict[str, list[float]] = defaultdict(list)
    for callback_id, queue_id in acked.items():
        if callback_id in first:
            by_queue[queue_id].append(first[callback_id])
    limits = {s.queue_id(stack.portal_id): (s.limit, _period_s(s)) for s in steps}
    worst = {q: (max_per_window(sorted(times), limits[q][1]), limits[q][0]) for q, times in by_queue.items()}
    return Verdict(
        acknowledged=len(acked), completed=len(set(acked) & set(first)),
        lost=sorted(set(acked) - set(first)), repeated={k: v for k, v in state.repeats.items() if k in acked},
        worst_window=worst,
    )


def _period_s(step: Step) -> float:
    return step.period * {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}[step.unit]


def database_health(url: str) -> dict[str, int]:
    """Counts that must be zero once a backlog is drained: executions pending or still
    leased ('releasing'), jobs executing past their lease."""
    with psycopg.connect(url) as conn:
        by_state = dict(conn.execute("SELECT state, count(*) FROM action_executions GROUP BY state").fetchall())
        stuck_jobs = conn.execute(
            "SELECT count(*) FROM jobs WHERE state = 'executing' AND leased_until < now()").fetchone()[0]
    return {"pending": by_state.get("pending", 0), "releasing": by_state.get("releasing", 0),
            "released": by_state.get("released", 0), "failed": by_state.get("failed", 0),
            "stuck_jobs": stuck_jobs}


def leftovers(health: dict[str, int]) -> tuple[int, int, int]:
    """``(pending, releasing, stuck jobs)`` of :func:`database_health`: all zero once a backlog
    is drained and its leases settled."""
    return health["pending"], health["releasing"], health["stuck_jobs"]


async def settle(url: str, timeout_s: float) -> float:
    """Wait until no execution is pending or leased ('releasing'); returns seconds waited.
    A lease left by a killed daemon lapses after ``THROTTLED_RELEASE_LEASE`` and the execution
    is sent again (HubSpot answers "already completed"), so this may take a lease or two."""
    started = time.monotonic()
    with trio.move_on_after(timeout_s):
        while True:
            health = database_health(url)
            if health["pending"] == health["releasing"] == 0:
                break
            await trio.sleep(0.2)
    return time.monotonic() - started


def releasing_now(url: str) -> set[str]:
    """Callback ids leased to a portal sender right now: what a daemon killed now had in flight."""
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT callback_id FROM action_executions WHERE state = 'releasing'")}


class Report:
    """Figures per scenario, printed at the end of the session and written to
    ``build/reliability-report.md``."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, object]] = {}
        self.outcomes: dict[str, str] = {}  # test name -> passed / failed / error

    def outcome(self, test: str, outcome: str) -> None:
        """Record a test's result; a failure is never overwritten by a later phase's pass."""
        if self.outcomes.get(test) not in ("failed", "error"):
            self.outcomes[test] = outcome

    def add(self, scenario: str, figures: dict[str, object]) -> None:
        self.rows.setdefault(scenario, {}).update(figures)

    def render(self) -> str:
        mode = "full" if FULL else "short (CI)"
        lines = [f"# Reliability report — {mode} run, {dt.datetime.now(UTC):%Y-%m-%d %H:%M} UTC", ""]
        lines += ["| test | result |", "|---|---|"]
        lines += [f"| {test} | {'passed' if result == 'passed' else '**' + result.upper() + '**'} |"
                  for test, result in self.outcomes.items()]
        lines.append("")
        for scenario, figures in sorted(self.rows.items()):
            lines += [f"## {scenario}", "", "| figure | value |", "|---|---|"]
            lines += [f"| {name} | {_fmt(value)} |" for name, value in figures.items()]
            lines.append("")
        return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
