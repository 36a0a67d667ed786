"""A patch of a pinned dependency: Hypercorn 0.18's trio TCP server (``pyproject.toml`` pins
``hypercorn>=0.18,<0.19``; re-read this file against any new version before lifting the pin),
and :func:`serve`, which serves an ASGI app with it — for the daemon and the sandbox.

Upstream gaps it closes — Hypercorn 0.18's trio connection (``hypercorn/trio/tcp_server.py``)
has four that matter for a server on the internet, found by reading it and by the
slow-client tests in ``tests/e2e/test_hostile_http.py``:

- ``read_timeout`` bounds each ``receive`` call, not a request: a client trickling one
  header byte every few seconds is never cut by it (only by the keep-alive timer, 75 s).
- When a read times out, the connection stops being read but stays open until the
  keep-alive timer fires.
- A client that opens HTTP/2 by prior knowledge (``PRI * HTTP/2.0``) and then only sends
  a ping now and then is never cut: the preface stops the keep-alive timer as a request
  would, and no request follows to end it.
- A connection closed while the request body is still arriving (a 413, a 408, any answer
  given without reading the body) is closed from inside the app's task, which Quart-Trio
  has just cancelled — so the close is skipped and the server goes on reading (and
  discarding) the body until the client stops or a read times out.

:class:`_Connection` closes them: between requests a client may stay silent for at most
``read_timeout_s`` and must send a whole request head within ``read_timeout_s`` of its first
byte; a read timeout closes the connection at once; the close is shielded from
cancellation. Once a head is in, the app bounds the body (Quart's ``BODY_TIMEOUT`` = the
same setting, a 408) and its own work (every network call has a deadline), so the
connection no longer times reads — hypercorn's per-read timeout would also cut a client
waiting silently for a slow answer. :func:`_worker_serve` is Hypercorn's ``worker_serve``
cut down to plain TCP, so that it can use :class:`_Connection`, with an accept loop of our
own: each listener holds at most its connection cap and admits bodies within its body budget
(``edge_limits.py``), and a failing ``accept`` (out of descriptors) is logged once a minute as
one JSON line instead of trio's multi-line traceback per attempt.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Awaitable, Callable
from functools import partial
from math import inf
from typing import Any

import structlog
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ASGIFramework, ConnectionState, LifespanState
from hypercorn.utils import repr_socket_addr, wrap_app

from throttled.logs import OncePer
from throttled.web.bad_host import refuse_bad_host
from throttled.web.body_budget import budget_bodies
from throttled.web.edge_limits import ConnectionTable, Edge
from throttled.web.unread_body import close_if_body_unread

log = structlog.get_logger("throttled.web.hypercorn_patch")

#: Default seconds a client may take to send a request's head (and, via the app, its body).
READ_TIMEOUT_S = 30.0
#: ``accept`` errors that mean "no resources now" (trio's own list): wait, do not crash.
_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_BUSY_BODY = b'{"error": "busy", "message": "too many connections, retry later"}'
_REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
            b"connection: close\r\ncontent-length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


def hypercorn_config(bind: str, *, keep_alive_s: float = 75.0, read_timeout_s: float = READ_TIMEOUT_S,
                     reuse_port: bool = False) -> Config:
    """Hypercorn settings for one plain-HTTP listener.

    Args:
        bind: ``host:port``; port 0 picks a free port.
        keep_alive_s: idle keep-alive timeout in seconds.
        read_timeout_s: seconds a client may stay silent, and may take to send a request
            head from its first byte (slow clients are cut).
        reuse_port: bind with ``SO_REUSEPORT`` (Linux spreads new connections over every
            process bound to the port).
    """
    config = Config()
    # Hypercorn sets SO_REUSEPORT on the sockets it makes only when it runs several workers;
    # our accept loop (``_worker_serve``) never reads ``workers`` otherwise.
    config.workers = 2 if reuse_port else 1
    config.bind = [bind]
    config.keep_alive_timeout = keep_alive_s
    config.read_timeout = read_timeout_s  # type: ignore[assignment]  # typed int | None upstream; seconds, a float works
    config.accesslog = None
    config.errorlog = None  # our own structured logs report errors
    config.graceful_timeout = 5.0
    # HubSpot can open many connections at once; the default backlog of 100 refuses a burst.
    config.backlog = 2048
    return config


async def serve(
    app: ASGIFramework,
    bind: str,
    *,
    read_timeout_s: float = READ_TIMEOUT_S,
    edge: Edge | None = None,
    reuse_port: bool = False,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``bind`` until cancelled or ``shutdown_trigger`` returns.

    Reports the bound base URL (e.g. ``"http://127.0.0.1:41234"``) through ``task_status``,
    so ``await nursery.start(serve, app, "127.0.0.1:0")`` returns the real port. A client
    silent for ``read_timeout_s``, or whose request head takes longer than that from its
    first byte, is disconnected. ``edge``: the listener's connection cap and body budget
    (default: derived from the open-file limit). ``reuse_port``: share the port with other
    processes (``SO_REUSEPORT``).
    """
    config = hypercorn_config(bind, read_timeout_s=read_timeout_s, reuse_port=reuse_port)
    edge = edge or Edge.derived()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(_worker_serve, app, config, edge, shutdown_trigger=shutdown_trigger))
        task_status.started(binds[0])


class _Connection(TCPServer):
    """Hypercorn's trio connection with a deadline on the request head and a reliable close."""

    def __init__(self, *args: Any) -> None:  # TCPServer's own arguments
        super().__init__(*args)
        self._awaiting_head = True  # between requests (hypercorn reports "idle")
        self._head_deadline = inf  # set by the first byte of a request head
        self._read_scope: trio.CancelScope | None = None  # the receive now waiting, if any
        self._evicted = False
        self.table: ConnectionTable | None = None  # set when admitted

    def evict(self) -> None:
        """Close this connection (it waits for a request head): the listener is at its cap."""
        self._evicted = True
        if self._read_scope is not None:
            self._read_scope.cancel()

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated):
            self._awaiting_head = event.idle  # idle=False: a whole head was parsed
            self._head_deadline = inf
            if self.table is not None:
                if event.idle:
                    self.table.idle(self, trio.current_time())
                else:
                    self.table.busy(self)
            if event.idle and self._read_scope is not None:
                # A response went out: the receive already waiting (with no deadline while the
                # request ran) now waits for the next head, so it gets that deadline. Without
                # this a kept-alive client that went silent held its socket forever (found by
                # a new-user trial: 1,100 such connections exhausted the file descriptors).
                self._read_scope.deadline = trio.current_time() + (self.config.read_timeout or inf)
        if isinstance(event, Closed):
            with trio.CancelScope(shield=True):  # the caller may be an app task being cancelled
                await self._close()
            await self.protocol.handle(Closed())
            return
        await super().protocol_send(event)

    async def _read_data(self) -> None:
        timeout = self.config.read_timeout or inf
        while not self._evicted:
            deadline = min(trio.current_time() + timeout, self._head_deadline) if self._awaiting_head else inf
            data = None
            try:
                with trio.CancelScope(deadline=deadline) as self._read_scope:
                    data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            finally:
                self._read_scope = None
            if data is None:  # the deadline passed, or evicted
                break
            if self._awaiting_head and self._head_deadline == inf:
                self._head_deadline = trio.current_time() + timeout
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
            protocol = self.protocol.protocol
            if isinstance(protocol, H2Protocol) and protocol.idle and not self._awaiting_head:
                # HTTP/2 by prior knowledge: the "PRI *" preface was announced as a request
                # (idle=False), but no stream is open — the next request is still to come.
                self._awaiting_head, self._head_deadline = True, inf
        await self.protocol.handle(Closed())
        await self.idle_task.stop()  # do not hold the socket open until the keep-alive timer
        with trio.CancelScope(shield=True):
            await self._close()


async def _serve_connection(app: AppWrapper, config: Config, context: WorkerContext, state: ConnectionState,
                            table: ConnectionTable, stream: trio.SocketStream) -> None:
    """One connection, start to end: admitted under the listener's cap (else answered 503),
    and its failure stays its own: connections share a nursery, so an exception escaping one
    would stop the listener and the daemon with it (a second new-user trial: DATA frames on
    an HTTP/2 stream the server had just answered raised ``KeyError`` in hypercorn's HTTP/2
    code and took the daemon down)."""
    connection = _Connection(app, config, context, state, stream)
    if not table.admit(connection, connection.evict, trio.current_time()):
        missed = table.refusals_logged.due("connection_cap", trio.current_time())
        if missed is not None:
            log.warning("http.refused", kind="connection_cap", open_connections=len(table), not_logged_since=missed,
                        note="every connection is inside a request at THROTTLED_MAX_CONNECTIONS: answered 503")
        await _refuse(stream)
        return
    connection.table = table
    try:
        await connection
    except Exception as exc:
        log.warning("http.connection_failed", error=type(exc).__name__)
        with trio.CancelScope(shield=True):
            await stream.aclose()
    finally:
        table.close(connection)


async def _refuse(stream: trio.SocketStream) -> None:
    """Answer 503 without reading the request, then close (at most a second's work)."""
    with trio.move_on_after(1.0), contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(_REFUSED)
    with trio.CancelScope(shield=True):
        await stream.aclose()


async def _accept_forever(listener: trio.SocketListener, handler: Callable[[trio.SocketStream], Awaitable[None]],
                          connections: trio.Nursery, table: ConnectionTable) -> None:
    """trio's ``serve_listeners`` loop for one listener, with its capacity errors logged as
    one structured line a minute (with how many were not logged) instead of a traceback each."""
    failures = OncePer(60.0)
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            if exc.errno not in _CAPACITY_ERRNOS:
                raise
            missed = failures.due(exc.errno, trio.current_time())
            if missed is not None:
                log.error("http.accept_failed", error=errno.errorcode.get(exc.errno or 0, str(exc.errno)),
                          open_connections=len(table), not_logged_since=missed)
            await trio.sleep(0.1)
            continue
        connections.start_soon(handler, stream)


async def _worker_serve(
    app: ASGIFramework,
    config: Config,
    edge: Edge,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``hypercorn.trio.run.worker_serve`` for plain TCP listeners, with :class:`_Connection`."""
    budgeted = budget_bodies(refuse_bad_host(app), edge.bodies, edge.limits.max_body_bytes)
    wrapped = wrap_app(close_if_body_unread(budgeted), config.wsgi_max_body_size, None)
    state: LifespanState = {}
    lifespan = Lifespan(wrapped, config, state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as connections:
            sockets = config.create_sockets().insecure_sockets
            listeners = []
            for sock in sockets:
                sock.listen(config.backlog)
                listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
            task_status.started([f"http://{repr_socket_addr(s.family, s.getsockname())}" for s in sockets])
            try:
                async with trio.open_nursery() as nursery:
                    handler = partial(_serve_connection, wrapped, config, context, ConnectionState(state.copy()),
                                      edge.connections)
                    for listener in listeners:
                        nursery.start_soon(_accept_forever, listener, handler, connections, edge.connections)
                    if shutdown_trigger is None:
                        await trio.sleep_forever()
                    await shutdown_trigger()
                    nursery.cancel_scope.cancel()
            finally:
                # Stop listening at once: upstream leaves the sockets to the garbage collector,
                # so a stopped server's port kept accepting connections nobody served.
                with trio.CancelScope(shield=True):
                    for listener in listeners:
                        await listener.aclose()
                await context.terminated.set()  # kept-alive connections close; requests finish
                connections.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
