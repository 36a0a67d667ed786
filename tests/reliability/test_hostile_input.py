"""Scenario 5: hostile input. Thousands of Hypothesis-generated requests to every route of
the public listener of a real daemon (wrong methods, huge and truncated bodies, bad JSON,
wrong types, unicode, nulls, missing, forged, stale and future signatures, replays, valid
signatures over bodies with wrong types, malformed HTTP over raw sockets), then slow
clients. Nothing may get a 5xx; every request gets an answer it deserves; no rejected
webhook writes a row; bodies over the limit get 413; slow clients are cut within the read
timeout while a normal request is served.

Every generated callback id starts with ``hostile-``: at the end, the rows with that prefix
must be exactly the webhooks answered 200 (valid signature over a valid body, sent on
purpose or a mutation that stayed valid).

Hypothesis generates the requests in a worker thread (``@given`` over batches of 32) and
hands them over a bounded channel to 16 senders in the test's trio loop, which send them
over real HTTP (a slow one does not hold up the rest). Every unacceptable
answer is collected (request, answer, what was expected) and the test fails at the end with
all of them grouped by kind, so one run shows every distinct problem; no shrinking (a batch
of real requests per step makes it take minutes), ``print_blob`` for the seed.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from functools import partial

import httpx
import psycopg
import trio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.raw_http import raw_exchange
from throttled.testing import Step

from .harness import reliability_stack, scale
from .hostile_strategies import (
    ACTION_PATH,
    PREFIX,
    Hostile,
    RawHostile,
    Sent,
    hostile_requests,
    materialize,
    raw_http,
)

REQUESTS = int(scale(2_000, 10_000))
BATCH = 32
CONCURRENCY = 16
LIMIT = 65_536  # THROTTLED_MAX_BODY (the default, set explicitly)
READ_TIMEOUT_S = 4.0  # THROTTLED_READ_TIMEOUT (2 s once cut a fuzzed request on a machine with two CPU hogs)
MARGIN_S = 1.5  # scheduling slack for the slow-client cuts on a loaded machine
STEP = Step(workflow_id=55, action_id=5, limit=1, period=1, unit="days")  # nothing released

_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3})")


def any_request() -> st.SearchStrategy[Hostile | RawHostile]:
    """Nine in ten through an HTTP client, one in ten as raw bytes."""
    return st.one_of(*[hostile_requests()] * 9, raw_http())


class Sender:
    """Sends generated requests to one daemon and keeps the tally."""

    def __init__(self, stack, http: httpx.AsyncClient) -> None:
        self.stack = stack
        self.url = stack.daemons[0].url
        self.http = http
        self.ids = itertools.count()
        self.statuses: Counter[int] = Counter()
        self.kinds: Counter[str] = Counter()
        self.accepted: set[str] = set()  # callback ids answered 200 (held)
        self.too_long: set[str] = set()  # callback ids answered 200 FAIL_CONTINUE QUEUE_TOO_LONG (not stored)
        self.accepted_on_purpose: set[str] = set()  # ... of a valid body sent signed
        self.rejected_ids: set[str] = set()  # callback ids answered anything else
        self.over_limit_webhooks = 0  # webhook bodies over THROTTLED_MAX_BODY ...
        self.over_limit_413 = 0  # ... answered 413
        self.not_implemented = 0  # 501s to a transfer coding h11 does not implement
        self.sent = 0
        self.problems: list[str] = []

    async def work(self, requests: trio.MemoryReceiveChannel) -> None:
        """Send requests until the channel closes; a line per unacceptable answer goes to
        ``problems``."""
        async with requests:
            async for item in requests:
                await self._one(item, self.problems)

    async def _one(self, item: Hostile | RawHostile, problems: list[str]) -> None:
        if isinstance(item, RawHostile):
            status = await self._raw(item)
            self._count(f"raw/{item.kind}", status)
            if status == 501 and item.kind == "transfer-coding":
                self.not_implemented += 1
            if not (item.hang_up or (status in item.expect if item.expect else 0 < status < 500)):
                problems.append(f"raw {item.kind}: {item.data[:120]!r} -> {status or 'no answer'}")
            return
        sent = materialize(item, base_url=self.url, secret=self.stack.hubspot.client_secret,
                           admin_token=self.stack.admin_token, portal_id=self.stack.portal_id, limit=LIMIT,
                           callback_id=f"{PREFIX}{next(self.ids)}")
        for _ in range(sent.repeat):
            status, text = await self._http(sent)
            sent.statuses.append(status)
            sent.answers.append(text[:160])
            self._count(sent.kind, status)
            if item.over_limit and item.path == ACTION_PATH and item.method == "POST":
                self.over_limit_webhooks += 1
                self.over_limit_413 += status == 413
        self._account(item, sent, problems)

    def _count(self, kind: str, status: int) -> None:
        self.sent += 1
        self.statuses[status] += 1
        self.kinds[kind.split("/")[0]] += 1

    def _account(self, item: Hostile, sent: Sent, problems: list[str]) -> None:
        if sent.callback_id is not None and item.path == ACTION_PATH and item.method == "POST":
            if any(status == 200 and '"QUEUE_TOO_LONG"' in text for status, text in zip(sent.statuses, sent.answers,
                                                                                            strict=True)):
                self.too_long.add(sent.callback_id)  # a valid step too slow for its backlog: answered, not held
            elif 200 in sent.statuses:
                self.accepted.add(sent.callback_id)
                if item.kind.startswith("webhook/valid/"):
                    self.accepted_on_purpose.add(sent.callback_id)
            else:
                self.rejected_ids.add(sent.callback_id)
        problems.extend(_problem(item, sent, status) for status in sent.statuses
                        if status >= 500 or status == 0 or (sent.expect is not None and status not in sent.expect))

    async def _http(self, sent: Sent) -> tuple[int, str]:
        content = _chunks(sent.body) if sent.chunked else sent.body
        request = self.http.build_request(sent.method, self.url + sent.target, headers=sent.headers, content=content)
        try:
            response = await self.http.send(request)
        except httpx.HTTPError as exc:
            self.stack.record_response(repr(exc))
            return 0, repr(exc)
        self.stack.record_response(response.text)
        return response.status_code, response.text

    async def _raw(self, item: RawHostile) -> int:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        received = bytearray()
        with trio.move_on_after(READ_TIMEOUT_S + 5):
            async with await trio.open_tcp_stream(host, int(port)) as stream:
                try:
                    await stream.send_all(item.data)
                    if item.hang_up:
                        return 0
                    while b"\r\n" not in received and (chunk := await stream.receive_some(65536)):
                        received.extend(chunk)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
        self.stack.record_response(received.decode("latin-1"))
        match = _STATUS_LINE.match(bytes(received))
        return int(match.group(1)) if match else 0


def _problem(item: Hostile, sent: Sent, status: int) -> str:
    return (f"{sent.kind}: {sent.method} {sent.target[:100]} signing={item.signing} "
            f"body={sent.body[:160]!r}{'…' if len(sent.body) > 160 else ''} ({len(sent.body)} bytes, "
            f"{'chunked' if sent.chunked else 'length'}) -> {status or 'no answer'} "
            f"{sent.answers[-1]!r}, expected {sorted(sent.expect) if sent.expect else '< 500'}")


async def _chunks(body: bytes):
    for start in range(0, max(len(body), 1), 16_384):
        yield body[start:start + 16_384]


def run_examples(requests: trio.MemorySendChannel, examples: int) -> None:
    """Hypothesis, in a worker thread: each example's batch goes into ``requests``."""

    async def enqueue(batch: list[Hostile | RawHostile]) -> None:
        for item in batch:
            await requests.send(item)

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(st.lists(any_request(), min_size=BATCH, max_size=BATCH))
    def batches(batch: list[Hostile | RawHostile]) -> None:
        trio.from_thread.run(enqueue, batch)

    batches()


async def fuzz(sender: Sender, examples: int) -> None:
    """Generate ``examples`` batches and send them, :data:`CONCURRENCY` at a time."""
    requests, pending = trio.open_memory_channel[Hostile | RawHostile](BATCH)
    async with trio.open_nursery() as nursery:
        async with pending:
            for _ in range(CONCURRENCY):
                nursery.start_soon(sender.work, pending.clone())
        async with requests:
            await trio.to_thread.run_sync(partial(run_examples, requests, examples))


# -- slow clients ------------------------------------------------------------------------


async def slow_clients(stack) -> tuple[dict[str, tuple[bytes, float]], list[int]]:
    """Four slow clients at once, and normal webhooks meanwhile."""
    url = stack.daemons[0].url
    head = b"GET /healthz HTTP/1.1\r\nHost: throttled\r\nX-Pad: " + b"a" * 60 + b"\r\n\r\n"
    post = (b"POST " + ACTION_PATH.encode() + b" HTTP/1.1\r\nHost: throttled\r\nContent-Type: application/json\r\n"
            b"Content-Length: 400\r\n\r\n")
    plans = {
        "connect, send nothing": [60.0],
        "half the headers, then nothing": [head[:25], 60.0],
        "headers trickled, a byte per 0.25 s": [s for byte in head for s in (bytes([byte]), 0.25)],
        "body trickled, a byte per 0.25 s": [post, *[s for _ in range(400) for s in (b"{", 0.25)]],
    }
    cuts: dict[str, tuple[bytes, float]] = {}
    served: list[int] = []

    async def slow(name: str) -> None:
        cuts[name] = await raw_exchange(url, plans[name])

    async def normal() -> None:
        await trio.sleep(0.5)
        for i in range(5):
            response = await stack.hubspot.enroll(url, f"{PREFIX}slow-ok-{i}", stack.portal_id, STEP)
            stack.record_response(response.text)
            served.append(response.status_code)
            await trio.sleep(0.2)

    with trio.fail_after(READ_TIMEOUT_S + 15):
        async with trio.open_nursery() as nursery:
            for name in plans:
                nursery.start_soon(slow, name)
            nursery.start_soon(normal)
    return cuts, served


def hostile_rows(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        return {r[0] for r in conn.execute("SELECT callback_id FROM action_executions WHERE callback_id LIKE %s",
                                           (PREFIX + "%",))}


async def test_hostile_input(reliability_database, log_dir, report):
    # The config API is fuzzed where it is most exposed: switched on for the public listener.
    env = {"THROTTLED_MAX_BODY": str(LIMIT), "THROTTLED_READ_TIMEOUT": str(READ_TIMEOUT_S),
           "THROTTLED_PUBLIC_CONFIG_API": "true"}
    async with reliability_stack(reliability_database, log_dir, env=env) as stack:
        daemon = stack.daemons[0]
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            sender = Sender(stack, http)
            started = time.monotonic()
            await fuzz(sender, -(-REQUESTS // BATCH))
            fuzz_s = time.monotonic() - started
            cuts, served = await slow_clients(stack)
            alive = (await http.get(daemon.url + "/healthz")).status_code == 200 and daemon.process.poll() is None
        rows = hostile_rows(reliability_database)
        wall_s = time.monotonic() - started

    slow_ok = {f"{PREFIX}slow-ok-{i}" for i in range(5)}
    written_by_rejected = rows - sender.accepted - slow_ok  # refused as too long included: never stored
    report.add("5. hostile input", {
        "requests sent (incl. replays and raw)": sender.sent,
        "by route": ", ".join(f"{k} {v}" for k, v in sorted(sender.kinds.items())),
        "by status (no answer: raw hang-ups and HTTP/2 prefaces)": ", ".join(
            f"{k or 'no answer'}: {v}" for k, v in sorted(sender.statuses.items())),
        "5xx (server errors)": sum(v for k, v in sender.statuses.items() if k >= 500) - sender.not_implemented,
        "501 to an unimplemented Transfer-Encoding (RFC 9112 §6.1, from h11)": sender.not_implemented,
        "webhooks accepted (200): on purpose / harmless mutations": f"{len(sender.accepted_on_purpose)} / "
                                                                     f"{len(sender.accepted - sender.accepted_on_purpose)}",
        "webhook callback ids rejected": len(sender.rejected_ids),
        "valid webhooks refused as too long for their queue": len(sender.too_long),
        "rows written by rejected requests": len(written_by_rejected),
        "webhook bodies over the limit / answered 413": f"{sender.over_limit_webhooks} / {sender.over_limit_413}",
        **{f"slow client cut: {name} (s)": cut for name, (_, cut) in cuts.items()},
        "webhooks served during the slow clients": f"{served.count(200)} / {len(served)}",
        "fuzzing wall time (s)": fuzz_s,
        "scenario wall time (s)": wall_s,
    })
    assert not sender.problems, _grouped(sender.problems)
    assert alive, "the daemon should still serve after the hostile input"
    assert not written_by_rejected, sorted(written_by_rejected)[:10]
    assert sender.accepted <= rows, sorted(sender.accepted - rows)[:10]  # a 200 means stored
    assert served == [200] * 5
    for name, (answer, cut) in cuts.items():
        assert cut < READ_TIMEOUT_S + MARGIN_S, (name, cut)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), (name, answer[:80])


def _grouped(problems: list[str], per_kind: int = 3) -> str:
    by_kind: dict[str, list[str]] = {}
    for line in problems:
        by_kind.setdefault(line.split(":", 1)[0], []).append(line)
    lines = [f"{len(problems)} unacceptable answers in {len(by_kind)} kinds:"]
    for kind, group in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
        lines += [f"  {kind} ×{len(group)}", *[f"    {line}" for line in group[:per_kind]]]
    return "\n".join(lines)
