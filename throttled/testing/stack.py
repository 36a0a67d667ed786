"""A whole local stack — sandbox HubSpot plus one or more daemons — for the demo and tests.

Everything is real: the daemons serve HTTP on loopback ports, store in PostgreSQL and
complete callbacks at the sandbox over HTTP. :class:`Hubspot` plays HubSpot's side:
it signs and posts enrollments and reads the completions back from the sandbox.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import re
import secrets
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import trio

from throttled.clock import Clock
from throttled.crypto import generate_key
from throttled.daemon import RunningDaemon, run_daemon
from throttled.hubspot.signatures import SignedRequest, signed_headers
from throttled.sandbox import SandboxConfig, serve_sandbox
from throttled.settings import Settings, load_settings
from throttled.throttle.rate import max_in_window

ACTION_PATH = "/api/hubspot/action"


def free_port() -> int:
    """A loopback port free right now (the daemon must know its public URL before binding)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Step:
    """A workflow step using the throttle: ``limit`` per ``period`` ``unit``, in ``mode``,
    optionally sharing the queue ``shared`` with other steps of the portal."""

    workflow_id: int
    action_id: int
    limit: int
    period: int
    unit: str
    mode: str = "burst"
    shared: str | None = None

    @property
    def label(self) -> str:
        unit = {"seconds": "s", "minutes": "min", "hours": "h", "days": "d", "weeks": "wk"}[self.unit]
        return f"{self.limit} per {self.period} {unit}"

    def queue_id(self, portal_id: int) -> str:
        if self.shared:
            return f"queue:{portal_id}:shared:{self.shared}"
        return f"queue:{portal_id}:{self.workflow_id}:{self.action_id}:0"

    def inputs(self) -> dict[str, str]:
        """The step's ``inputFields`` as HubSpot sends them (numbers as strings)."""
        fields = {"max_throughput": str(self.limit), "time_period": str(self.period), "time_unit": self.unit}
        if self.mode != "burst":
            fields["mode"] = self.mode
        if self.shared:
            fields["shared_queue"] = self.shared
        return fields


def enrollment_body(callback_id: str, portal_id: int, step: Step, object_id: int = 1) -> bytes:
    """A HubSpot-shaped action-execution body (protocol notes §1), numbers as strings."""
    return json.dumps({
        "callbackId": callback_id,
        "origin": {"portalId": portal_id, "actionDefinitionId": 777, "actionDefinitionVersion": 1},
        "context": {"source": "WORKFLOWS", "workflowId": step.workflow_id, "actionId": step.action_id},
        "object": {"objectId": object_id, "objectType": "CONTACT"},
        "inputFields": step.inputs(),
    }, separators=(",", ":")).encode()


@dataclass
class Hubspot:
    """HubSpot's side of the conversation, for the demo and end-to-end tests."""

    sandbox_url: str
    client_secret: str
    http: httpx.AsyncClient
    sent: dict[str, str] = field(default_factory=dict)  # callback id -> queue id, acknowledged

    async def post(self, daemon_url: str, body: bytes, *, timestamp_ms: int | None = None,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        """POST a signed enrollment to a daemon (signed for ``daemon_url``'s action URI)."""
        uri = daemon_url + ACTION_PATH
        ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        signed = signed_headers(self.client_secret, SignedRequest("POST", uri, body), ts)
        return await self.http.post(uri, content=body, headers={**signed, **(headers or {})})

    async def enroll(self, daemon_url: str, callback_id: str, portal_id: int, step: Step) -> httpx.Response:
        """Post one enrollment; remember it when the daemon answered 200 BLOCK."""
        response = await self.post(daemon_url, enrollment_body(callback_id, portal_id, step))
        if response.status_code == 200 and response.json()["outputFields"]["hs_execution_state"] == "BLOCK":
            self.sent[callback_id] = step.queue_id(portal_id)
        return response

    async def completed(self) -> int:
        """How many completions the sandbox recorded (its counter: cheap to poll, unlike
        :meth:`completions`, which sends every record)."""
        response = await self.http.get(f"{self.sandbox_url}/_sandbox/stats")
        response.raise_for_status()
        count: int = response.json()["completions"]
        return count

    async def completions(self) -> list[dict[str, Any]]:
        """Every completion the sandbox recorded, in order."""
        response = await self.http.get(f"{self.sandbox_url}/_sandbox/completions")
        response.raise_for_status()
        completions: list[dict[str, Any]] = response.json()["completions"]
        return completions

    async def install(self, daemon_url: str, portal_id: int | None = None) -> int:
        """Install the app through the real OAuth redirects; returns the portal id.

        ``portal_id`` picks the account the sandbox grants (as a user choosing one of their
        HubSpot accounts on the authorize page); default: the sandbox's default portal.
        """
        response = await self.http.get(f"{daemon_url}/api/oauth/install")
        for hop in range(3):  # daemon -> sandbox authorize -> daemon callback
            if response.status_code not in (302, 303, 307):
                break
            location = response.headers["Location"]
            if hop == 0 and portal_id is not None:
                location += f"&portal_id={portal_id}"
            response = await self.http.get(location)
        response.raise_for_status()
        found = re.search(r"(?:HubSpot account|Portal) (\d+) is connected", response.text)  # today's page, or older
        assert found, f"no install success page: {response.text[:200]}"
        return int(found.group(1))


@dataclass
class Stack:
    """A running sandbox and daemons."""

    hubspot: Hubspot
    sandbox_state: object
    daemons: list[RunningDaemon]
    settings: Settings
    portal_id: int


@asynccontextmanager
async def local_stack(
    database_url: str,
    *,
    daemons: int = 1,
    portal_id: int = 62515,
    clock: Clock | None = None,
    overrides: dict[str, Any] | None = None,
    sandbox_config: dict[str, Any] | None = None,
    verify: ssl.SSLContext | bool = True,
    sandbox_process: bool = False,
) -> AsyncIterator[Stack]:
    """Start the sandbox and ``daemons`` daemons on one database; install one portal.

    ``overrides``: daemon settings by field name (they win over the stack's own: a ``bind`` and
    ``public_url`` put a proxy in front); ``sandbox_config``: :class:`SandboxConfig` fields
    (e.g. ``rate_limit_interval_s``); ``verify``: how the stack's HTTP client checks TLS (a
    proxy's test certificate); ``sandbox_process``: run the sandbox as its own process
    (``throttled sandbox``, default settings only) so HubSpot's side does not share the
    daemons' core — benchmarks measuring the daemon use it; ``Stack.sandbox_state`` is then
    ``None``. Yields a :class:`Stack`; everything stops when the block exits.
    """
    if sandbox_process and sandbox_config:
        raise ValueError("a sandbox process runs with default settings: no sandbox_config")
    client_id, client_secret = "demo-client", "demo-secret-" + secrets.token_hex(8)
    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=30, verify=verify) as http:
        config = SandboxConfig(client_id=client_id, client_secret=client_secret, app_id=4242,
                               default_portal_id=portal_id, **(sandbox_config or {}))
        if sandbox_process:
            sandbox: Any = await _sandbox_process(nursery, http, config)
        else:
            sandbox = await nursery.start(partial(serve_sandbox, config))
        running: list[RunningDaemon] = []
        first_public_url = ""
        key = generate_key()  # one for all the daemons: they share the database
        fields: dict[str, Any] = {
            "database_url": database_url, "admin_bind": "127.0.0.1:0", "hubspot_client_id": client_id,
            "hubspot_client_secret": client_secret, "hubspot_api_base": sandbox.url,
            "hubspot_authorize_url": f"{sandbox.url}/oauth/authorize", "encryption_key": key,
        }
        for _ in range(daemons):
            settings, daemon = await _start_daemon(nursery, fields, overrides or {}, clock)
            first_public_url = first_public_url or settings.effective_public_url
            running.append(daemon)
        hubspot = Hubspot(sandbox.url, client_secret, http)
        installed = await hubspot.install(first_public_url)  # through a proxy, when one is in front
        try:
            yield Stack(hubspot, getattr(sandbox, "state", None), running, settings, installed)
        finally:
            nursery.cancel_scope.cancel()


async def _start_daemon(nursery: trio.Nursery, fields: dict[str, Any], overrides: dict[str, Any], clock: Clock | None,
                        tries: int = 3) -> tuple[Settings, RunningDaemon]:
    """Start one daemon on a port :func:`free_port` picked (unless ``overrides`` binds it).
    The port is free when picked, not when bound: an outgoing connection of anything else on the
    machine may take it meanwhile (both come from the ephemeral range), so a bind that finds it
    in use picks again, up to ``tries`` times.

    Raises:
        OSError: (maybe in an exception group) the last try could not bind, or another error.
    """
    for attempt in range(tries):
        port = free_port()
        own = {"bind": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"}
        settings = load_settings(**(fields | own | overrides))
        try:
            daemon: RunningDaemon = await nursery.start(partial(run_daemon, settings, fields["database_url"], clock=clock))
        except BaseException as exc:
            if attempt + 1 < tries and "bind" not in overrides and _address_in_use(exc):
                continue
            raise
        return settings, daemon
    raise AssertionError("unreachable: the last try returns or raises")


def _address_in_use(exc: BaseException) -> bool:
    """Whether ``exc`` is, or is a group of nothing but, "address already in use"."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_address_in_use(e) for e in exc.exceptions)
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE


@dataclass(frozen=True)
class _SandboxProcess:
    url: str


async def _sandbox_process(nursery: trio.Nursery, http: httpx.AsyncClient, config: SandboxConfig) -> _SandboxProcess:
    return _SandboxProcess(await start_sandbox_process(nursery, http, config))


async def start_sandbox_process(nursery: trio.Nursery, http: httpx.AsyncClient, config: SandboxConfig) -> str:
    """Start ``throttled sandbox`` (``config``'s client, app and default portal; other
    settings default) as a child process of ``nursery`` on a free port; returns its URL once
    it answers. It stops when the nursery is cancelled."""
    port = free_port()
    command = [sys.executable, "-m", "throttled", "sandbox", "--bind", f"127.0.0.1:{port}",
               "--client-id", config.client_id, "--client-secret", config.client_secret,
               "--app-id", str(config.app_id), "--portal-id", str(config.default_portal_id)]
    await nursery.start(partial(trio.run_process, command, check=False, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL))
    url = f"http://127.0.0.1:{port}"
    await wait_answering(http, f"{url}/_sandbox/stats")
    return url


async def wait_answering(http: httpx.AsyncClient, url: str, timeout_s: float = 30.0) -> None:
    """Poll ``url`` every 0.1 s until it answers 200 (a child process finished starting).

    Raises:
        trio.TooSlowError: not within ``timeout_s`` seconds.
    """
    with trio.fail_after(timeout_s):
        while True:
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await trio.sleep(0.1)


def max_per_window(times: Sequence[float], period_s: float) -> int:
    """Most completions in any half-open window of ``period_s`` seconds (epoch-second times)."""
    stamps = [dt.datetime.fromtimestamp(t, dt.UTC) for t in times]
    return max_in_window(stamps, dt.timedelta(seconds=period_s))
