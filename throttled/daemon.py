"""The daemon: one root nursery, one subsystem each, started in dependency order, stopped
gracefully.

``nursery.start`` orders start-up — database migrated, then batcher, portal senders, the
config listener, scheduler, leader election and cron, the admin listener, and the public
web server last, so nothing is accepted before it can be stored and released; then
``READY=1`` goes to systemd. :meth:`RunningDaemon.request_stop` starts the graceful
shutdown: new webhooks get 503 + Retry-After (HubSpot retries them), the batcher drains and
answers everyone waiting, no new job is claimed and running ones finish, batches already on
their way to HubSpot finish (up to the grace period), and then everything is cancelled —
the scheduler hands unfinished jobs back and the portal senders put unsent releases back in
line, so another daemon takes them at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import structlog
import trio
from hypercorn.typing import ASGIFramework

from throttled.cleaner import CLEANER_KIND, Cleaner
from throttled.cleaner.cleaner import cleaner_cron
from throttled.clock import Clock, DatabaseClock
from throttled.db import executions as executions_sql
from throttled.db.engine import Database, DatabaseUnavailable
from throttled.db.schema import ensure_current
from throttled.hubspot.budget import PortalBudget
from throttled.hubspot.client import HubSpotClient
from throttled.hubspot.recorder import HoldConfig
from throttled.hubspot.senders import PortalSenders, SenderConfig
from throttled.hubspot.tokens import TokenStore
from throttled.ingest.batcher import Batcher
from throttled.jobs.cron import Cron
from throttled.jobs.leader import Leadership
from throttled.jobs.notifier import Notifier
from throttled.jobs.scheduler import Scheduler, SchedulerConfig, new_owner_id
from throttled.service.clock_sync import keep_in_sync
from throttled.service.liveness import keep_alive
from throttled.service.memory import trim_after_floods
from throttled.service.metrics import Metrics
from throttled.service.systemd import SystemdNotifier, watchdog, watchdog_interval_s
from throttled.settings import Settings
from throttled.throttle.config_cache import CONFIG_CHANNEL, ConfigCache
from throttled.throttle.job import THROTTLE_JOB_KIND
from throttled.throttle.worker import ThrottleWorker, WorkerConfig
from throttled.web.admin_app import AdminDeps, create_admin_app
from throttled.web.app import WebDeps, create_app
from throttled.web.edge_limits import ADMIN_BODY_BUDGET_BYTES, ADMIN_MAX_CONNECTIONS, Edge, EdgeLimits, raise_open_file_limit
from throttled.web.hypercorn_patch import serve

log = structlog.get_logger("throttled.daemon")

STATUS_EVERY_S = 10.0
#: Connections of the admin listener's own pool (status page, metrics, operator API).
ADMIN_POOL_SIZE = 2


@dataclass
class RunningDaemon:
    """Handles on a running daemon (for the CLI, the demo, tests and status lines)."""

    url: str
    admin_url: str
    db: Database
    batcher: Batcher
    scheduler: Scheduler
    senders: PortalSenders
    tokens: TokenStore
    leadership: Leadership
    cleaner: Cleaner
    metrics: Metrics
    web: WebDeps
    stop_requested: trio.Event = field(default_factory=trio.Event)

    def request_stop(self) -> None:
        """Begin the graceful shutdown (idempotent)."""
        self.stop_requested.set()


async def run_daemon(
    settings: Settings,
    database_url: str,
    *,
    clock: Clock | None = None,
    notifier: SystemdNotifier | None = None,
    task_status: trio.TaskStatus[RunningDaemon] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until stopped (:meth:`RunningDaemon.request_stop`) or cancelled.

    Args:
        settings: validated settings; the client secret and an encryption key must be set.
        database_url: PostgreSQL URL (the CLI resolves the embedded default).
        clock: defaults to a :class:`DatabaseClock` kept on the database's time (tests pass
            a :class:`TrioClock` to drive time virtually).
        notifier: systemd notifier (default: from ``NOTIFY_SOCKET``).
    Raises:
        SettingsError: a required setting is missing.
        DatabaseUnavailable: the database cannot be reached at start-up.
        OSError: a listener cannot bind.
    """
    settings.require("hubspot_client_secret")
    ring = settings.key_ring()
    database_clock = DatabaseClock() if clock is None else None
    clock = clock or database_clock
    notifier = notifier or SystemdNotifier()
    metrics = Metrics()
    raise_open_file_limit()
    edge = Edge.derived(settings.max_connections, settings.body_budget_bytes, settings.max_body_bytes)
    admin_edge = Edge(EdgeLimits(ADMIN_MAX_CONNECTIONS, ADMIN_BODY_BUDGET_BYTES, settings.max_body_bytes))
    metrics.watch_edge(edge.numbers)
    db = Database(database_url, pool_size=settings.db_pool_size)
    # The admin listener's own small pool: however many people watch /admin, or however slow
    # a scrape, webhooks and releases never wait for a connection because of them.
    admin_db = Database(database_url, pool_size=ADMIN_POOL_SIZE)
    client = HubSpotClient(
        settings.hubspot_api_base, settings.hubspot_client_id or "", settings.secret("hubspot_client_secret"),
        timeout_s=settings.hubspot_timeout_s, metrics=metrics,
        budget=PortalBudget(settings.portal_budget, settings.portal_budget_window_s),
        callbacks_api=settings.callbacks_api, token_api=settings.token_api,
    )
    try:
        for migration in await ensure_current(db):
            log.info("schema.migrated", migration=migration.name)
        assert clock is not None
        owner = new_owner_id()
        tokens = TokenStore(db, clock, ring, client, owner=owner)
        batcher = Batcher(db, clock, settings.block_limits, metrics=metrics)
        senders = PortalSenders(db, clock, tokens, client, SenderConfig(
            flush_interval_s=settings.flush_interval_s, release_lease_s=settings.release_lease_s,
            renew_margin_s=settings.renew_margin_s,
            holds=HoldConfig(hold_after=settings.hold_after, hold_s=settings.hold_s, portal_hold_s=settings.portal_hold_s)))
        config_cache = ConfigCache(db, clock, ttl_s=settings.config_ttl_s)
        listener = Notifier(database_url)  # the one LISTEN connection: jobs and config changes
        listener.subscribe(CONFIG_CHANNEL, config_cache.invalidate)
        worker = ThrottleWorker(db, clock, senders.submit,
                                WorkerConfig(release_lease_s=settings.release_lease_s, call_s=settings.hubspot_timeout_s),
                                overrides=config_cache.get, metrics=metrics, ack_latency=lambda: senders.ack_latency_s)
        cleaner = Cleaner(db, clock, job_retention_s=settings.job_retention_s, metrics=metrics,
                          execution_retention_s=settings.execution_retention_s)
        scheduler = Scheduler(
            db, clock, {THROTTLE_JOB_KIND: worker, CLEANER_KIND: cleaner},
            SchedulerConfig(workers=settings.workers, poll_interval_s=settings.poll_interval_s, lease_s=settings.job_lease_s),
            owner=owner, notifier=listener,
        )
        scheduler.on_rescue = metrics.rescues.inc
        scheduler.on_claimed = lambda kind, lag_s: metrics.job_lag.labels(kind).observe(lag_s)
        leadership = Leadership(db, clock, "cron", scheduler.owner, ttl_s=settings.leader_ttl_s)
        cron = Cron(db, clock, leadership, [cleaner_cron(settings.cleaner_interval_s)])
        admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
        web = WebDeps(
            db=db, clock=clock, batcher=batcher, tokens=tokens, client=client, metrics=metrics,
            public_url=settings.effective_public_url, client_id=settings.hubspot_client_id,
            client_secret=settings.secret("hubspot_client_secret"), authorize_url=settings.hubspot_authorize_url,
            longest_block=settings.block_max, admin_token=admin_token, config_api=settings.public_config_api,
            signature_versions=settings.accepted_signatures, max_body_bytes=settings.max_body_bytes,
            oauth_callbacks_per_minute=settings.oauth_callbacks_per_minute,
            read_timeout_s=settings.read_timeout_s,
        )
        pages_token = settings.pages_token.get_secret_value() if settings.pages_token else None
        admin = create_admin_app(AdminDeps(admin_db, clock, metrics, lambda: senders.active_portals, admin_token,
                                           pages_token, settings.admin_hosts_allowed))
        async with trio.open_nursery() as nursery:
            if database_clock is not None:  # first: every "now" below is the database's
                await nursery.start(partial(keep_in_sync, database_clock, db, metrics))
            await nursery.start(partial(keep_alive, db, clock, owner, settings.leader_ttl_s))
            nursery.start_soon(_resign_on_exit, leadership)
            await nursery.start(batcher.run)
            await nursery.start(senders.run)
            await nursery.start(listener.run)
            await nursery.start(scheduler.run)
            await nursery.start(leadership.run)
            await nursery.start(cron.run)
            admin_url = await _listen(nursery, admin, settings.admin_bind, settings.read_timeout_s, "THROTTLED_ADMIN_BIND",
                                      admin_edge)
            url = await _listen(nursery, create_app(web), settings.bind, settings.read_timeout_s, "THROTTLED_BIND", edge,
                                reuse_port=settings.reuse_port)
            nursery.start_soon(trim_after_floods, edge.connections)
            daemon = RunningDaemon(url, admin_url, db, batcher, scheduler, senders, tokens, leadership,
                                   cleaner, metrics, web)
            log.info("daemon.ready", url=url, admin_url=admin_url, owner=scheduler.owner)
            notifier.notify("READY=1")
            _start_service_tasks(nursery, daemon, notifier)
            task_status.started(daemon)
            await daemon.stop_requested.wait()
            await _stop_gracefully(daemon, notifier, settings.shutdown_grace_s)
            nursery.cancel_scope.cancel()
    finally:
        log.info("daemon.stopped")
        with trio.CancelScope(shield=True):
            await client.aclose()
        admin_db.dispose()
        db.dispose()


async def _listen(nursery: trio.Nursery, app: ASGIFramework, bind: str, read_timeout_s: float, name: str,
                  edge: Edge, *, reuse_port: bool = False) -> str:
    """Serve ``app`` on ``bind`` (shared with other processes when ``reuse_port``); a bind
    failure names the listener and its address (it arrives inside an exception group from
    the server's nursery)."""
    try:
        url: str = await nursery.start(partial(serve, app, bind, read_timeout_s=read_timeout_s, edge=edge,
                                               reuse_port=reuse_port))
        return url
    except (OSError, BaseExceptionGroup) as exc:
        raise listen_failure(exc, bind, name) from None


def listen_failure(exc: BaseException, bind: str, name: str) -> BaseException:
    """The error to raise when listening on ``bind`` failed with ``exc``: one ``OSError``
    naming the setting and the address (the server's nursery wraps the original in a group);
    ``exc`` itself when it holds no ``OSError``."""
    failure = _first_os_error(exc)
    if failure is None:
        return exc
    reason = failure.strerror or str(failure)
    return OSError(failure.errno, f"cannot listen on {bind} ({name}): {reason}")


def _first_os_error(exc: BaseException) -> OSError | None:
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        return next((found for e in exc.exceptions if (found := _first_os_error(e)) is not None), None)
    return None


def _start_service_tasks(nursery: trio.Nursery, daemon: RunningDaemon, notifier: SystemdNotifier) -> None:
    if not notifier.enabled:
        return
    nursery.start_soon(_status_lines, daemon, notifier)
    interval = watchdog_interval_s()
    if interval:
        nursery.start_soon(watchdog, notifier, interval, _progress_check(daemon))


def _progress_check(daemon: RunningDaemon) -> Callable[[], bool]:
    """Alive = the scheduler's loop has turned since the last check (it turns at least every
    poll interval, idle or not) and no group commit has hung for over 30 s."""
    last = [-1]

    def alive() -> bool:
        turned = daemon.scheduler.loops != last[0]
        last[0] = daemon.scheduler.loops
        return turned and daemon.batcher.oldest_wait_s < 30.0

    return alive


async def _status_lines(daemon: RunningDaemon, notifier: SystemdNotifier) -> None:
    """``STATUS=`` for ``systemctl status``: backlog by state and portal tasks alive."""
    while True:
        try:
            counts = await daemon.db.transaction(executions_sql.count_active)
            notifier.status(f"pending {counts.get('pending', 0)}, releasing {counts.get('releasing', 0)}; "
                            f"portal tasks {daemon.senders.active_portals}")
        except DatabaseUnavailable:
            notifier.status("database unavailable; webhooks answered 503 until it is back")
        await trio.sleep(STATUS_EVERY_S)


#: Seconds systemd is asked to wait beyond the grace for the last steps (hand-backs, closing).
STOP_SLACK_S = 10.0


async def _stop_gracefully(daemon: RunningDaemon, notifier: SystemdNotifier, grace_s: float) -> None:
    """Stop in order within one budget of ``grace_s`` seconds for all steps together (not per
    step: three steps of 10 s each used to meet systemd's TimeoutStopSec=30 exactly), and tell
    systemd how long that takes (``EXTEND_TIMEOUT_USEC``), so a longer grace than the unit's
    stop timeout still ends in a clean stop, not a SIGKILL."""
    notifier.notify("STOPPING=1")
    notifier.notify(f"EXTEND_TIMEOUT_USEC={int((grace_s + STOP_SLACK_S) * 1_000_000)}")
    log.info("daemon.stopping", grace_s=grace_s)
    deadline = trio.current_time() + grace_s
    daemon.web.state.stopping = True  # new webhooks: 503 + Retry-After from here on
    with trio.move_on_at(deadline):
        while not daemon.batcher.idle:  # everyone already waiting gets their answer
            await trio.sleep(0.01)
    daemon.scheduler.stop_claiming()
    await daemon.scheduler.wait_idle(max(0.0, deadline - trio.current_time()))
    await daemon.senders.drain(max(0.0, deadline - trio.current_time()))


async def _resign_on_exit(leadership: Leadership) -> None:
    """Resign leadership when the daemon stops, so another daemon leads at once."""
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await leadership.resign()
