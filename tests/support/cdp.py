"""A small Chrome DevTools Protocol client: headless Chromium driven over its debugging
websocket (``trio-websocket``), for tests that need a real browser — cookies, redirects,
forms, layout and screenshots as a user's browser has them.

``async with chromium_page(profile_dir) as page:`` starts ``chromium --headless
--remote-debugging-port=0`` with its own profile, reads the port from the profile's
``DevToolsActivePort`` file, connects to the first page target and yields a :class:`Page`;
on exit the websocket closes and the browser is stopped (``processes.stop``). Every wait has
a deadline and fails with what it was waiting for.
"""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from tests.support.processes import debian_binary, stop

#: The flags of the status-page test, plus no first-run noise.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--no-default-browser-check", "--hide-scrollbars", "--mute-audio"]
START_S = 30.0
STEP_S = 30.0


class CdpError(AssertionError):
    """Chromium answered a command with an error, or a page script threw."""


def chromium() -> str:
    """The Chromium binary (fails under CI, skips elsewhere, when it is missing)."""
    return debian_binary("chromium", "chromium-browser", package="chromium")


@asynccontextmanager
async def chromium_page(profile: Path) -> AsyncIterator[Page]:
    """A headless Chromium with the profile ``profile`` (created), and its first page."""
    process, log = _launch(profile)
    try:
        port = await _debugging_port(profile, process)
        async with httpx.AsyncClient(timeout=10) as http:
            targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        pages = [t for t in targets if t.get("type") == "page"]
        assert pages, f"Chromium has no page target: {targets}"
        async with open_websocket_url(pages[0]["webSocketDebuggerUrl"], max_message_size=64 * 1024 * 1024) as ws:
            page = Page(ws)
            await page.call("Page.enable")
            await page.call("Network.enable")
            await page.call("Runtime.enable")
            yield page
    finally:
        await trio.to_thread.run_sync(stop, process)
        log.close()


class Page:
    """One page target: commands with their answers, and the events that matter here — the
    load event and the status of each top-level document response."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self.loads = 0  # Page.loadEventFired seen so far
        self.status: int | None = None  # HTTP status of the last top-level document
        self.url: str | None = None

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its ``result``.

        Raises:
            CdpError: Chromium answered with an error.
        """
        ident = next(self._ids)
        await self._ws.send_message(json.dumps({"id": ident, "method": method, "params": params}))
        with trio.fail_after(STEP_S):
            while True:
                message = await self._receive()
                if message.get("id") == ident:
                    if "error" in message:
                        raise CdpError(f"{method}: {message['error']}")
                    result: dict[str, Any] = message.get("result", {})
                    return result

    async def navigate(self, url: str) -> int | None:
        """Open ``url`` and wait for its load event; returns the document's HTTP status."""
        loads = self.loads
        await self.call("Page.navigate", url=url)
        await self._wait_load(loads, f"load of {url}")
        return self.status

    async def submit(self, form_js: str, *, before: str = "") -> int | None:
        """Submit the form the expression ``form_js`` finds — after running ``before``, which
        sees it as ``f`` (to fill fields, drop the token, aim it elsewhere) — and wait for the
        next page's load; returns its HTTP status."""
        loads = self.loads
        await self.evaluate(f"(() => {{ const f = {form_js}; if (!f) throw new Error('no such form'); "
                            f"{before}; HTMLFormElement.prototype.submit.call(f); }})()")
        await self._wait_load(loads, f"the page after submitting {form_js}")
        return self.status

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript ``expression`` in the page (JSON-serialisable).

        Raises:
            CdpError: the expression threw.
        """
        answer = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise CdpError(f"{expression[:200]}: {answer['exceptionDetails'].get('exception', {}).get('description')}")
        return answer["result"].get("value")

    async def html(self) -> str:
        """The page's DOM as HTML."""
        value: str = await self.evaluate("document.documentElement.outerHTML")
        return value

    async def screenshot(self, width: int, height: int, *, mobile: bool) -> bytes:
        """A PNG of the viewport at ``width`` x ``height`` CSS px (device scale 1)."""
        await self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                        mobile=mobile)
        shot = await self.call("Page.captureScreenshot", format="png")
        return base64.b64decode(shot["data"])

    async def _wait_load(self, loads: int, what: str) -> None:
        with trio.move_on_after(STEP_S) as waited:
            while self.loads <= loads:
                await self._receive()
        if waited.cancelled_caught:
            raise AssertionError(f"timed out after {STEP_S} s waiting for {what}")

    async def _receive(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await self._ws.get_message())
        method = message.get("method")
        if method == "Page.loadEventFired":
            self.loads += 1
        elif method == "Network.responseReceived" and message["params"].get("type") == "Document":
            response = message["params"]["response"]
            self.status, self.url = int(response["status"]), response["url"]
        return message


def _launch(profile: Path) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """Start Chromium on ``profile``; its output goes to ``<profile>.log`` beside it."""
    profile.mkdir(parents=True, exist_ok=True)
    log = (profile.parent / f"{profile.name}.log").open("wb")
    process = subprocess.Popen([chromium(), *FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}",
                                "about:blank"], stdout=log, stderr=subprocess.STDOUT)
    return process, log


def _port_written(marker: Path) -> int | None:
    """The port on the first line of ``DevToolsActivePort``, once Chromium has written it."""
    if not marker.exists():
        return None
    first = marker.read_text().splitlines()[:1]
    return int(first[0]) if first and first[0].isdigit() else None


async def _debugging_port(profile: Path, process: subprocess.Popen[bytes]) -> int:
    """The port Chromium wrote to ``DevToolsActivePort`` (first line) once it listens."""
    marker = profile / "DevToolsActivePort"
    with trio.move_on_after(START_S):
        while True:
            if process.poll() is not None:
                raise AssertionError(f"Chromium exited {process.returncode} before listening")
            port = _port_written(marker)
            if port is not None:
                return port
            await trio.sleep(0.05)
    raise AssertionError(f"Chromium wrote no {marker} within {START_S} s")
