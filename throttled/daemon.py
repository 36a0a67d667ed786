"""The daemon: one root nursery, one subsystem each, started in dependency order.

``nursery.start`` orders start-up — database migrated, then batcher, portal queues,
scheduler, leader election and cron, and the web server last, so nothing is accepted before it can be stored and
released. Cancelling the root scope stops everything; the scheduler hands its running
jobs back on the way out.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
import trio

from throttled.cleaner import CLEANER_CRON, CLEANER_KIND, Cleaner
from throttled.clock import Clock, WallClock
from throttled.db.engine import Database
from throttled.db.schema import migrate
from throttled.hubspot.budget import PortalBudget
from throttled.hubspot.client import HubSpotClient
from throttled.hubspot.portal_queue import PortalQueueConfig, PortalQueues
from throttled.hubspot.tokens import TokenStore
from throttled.ingest.batcher import Batcher
from throttled.ingest.store import THROTTLE_JOB_KIND
from throttled.jobs.cron import Cron
from throttled.jobs.listener import listen
from throttled.jobs.leader import Leadership
from throttled.jobs.scheduler import Scheduler, SchedulerConfig
from throttled.settings import Settings
from throttled.throttle.config_cache import CONFIG_CHANNEL, ConfigCache
from throttled.throttle.worker import ThrottleWorker, WorkerConfig
from throttled.web.app import WebDeps, create_app
from throttled.web.server import serve

log = structlog.get_logger("throttled.daemon")


@dataclass
class RunningDaemon:
    """Handles on a running daemon (for the demo, tests and status lines)."""

    url: str
    db: Database
    batcher: Batcher
    scheduler: Scheduler
    portal_queues: PortalQueues
    tokens: TokenStore
    leadership: Leadership
    cleaner: Cleaner


async def run_daemon(
    settings: Settings,
    database_url: str,
    *,
    clock: Clock | None = None,
    task_status: trio.TaskStatus[RunningDaemon] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the daemon until cancelled; report a :class:`RunningDaemon` once serving.

    Args:
        settings: validated settings; the client secret and encryption key must be set.
        database_url: PostgreSQL URL (the CLI resolves the embedded default).
        clock: defaults to :class:`WallClock`.
    Raises:
        SettingsError: a required setting is missing.
        DatabaseUnavailable: the database cannot be reached at start-up.
    """
    settings.require("hubspot_client_secret")
    settings.key_ring()  # raises SettingsError when no key is configured
    clock = clock or WallClock()
    client_secret = settings.secret("hubspot_client_secret")
    db = Database(database_url, pool_size=settings.db_pool_size)
    client = HubSpotClient(
        settings.hubspot_api_base, settings.hubspot_client_id or "", client_secret,
        timeout_s=settings.hubspot_timeout_s,
        budget=PortalBudget(settings.portal_budget, settings.portal_budget_window_s),
        callbacks_api=settings.callbacks_api, token_api=settings.token_api,
    )
    try:
        await db.transaction(migrate)
        cipher = settings.key_ring()
        tokens = TokenStore(db, clock, cipher, client)
        batcher = Batcher(db, clock, settings.block_duration_s)
        portal_queues = PortalQueues(db, clock, tokens, client, PortalQueueConfig(
            flush_interval_s=settings.flush_interval_s, hold_after=settings.hold_after, hold_s=settings.hold_s))
        config_cache = ConfigCache(db, clock, ttl_s=settings.config_ttl_s)
        worker = ThrottleWorker(db, clock, portal_queues.submit, WorkerConfig(release_lease_s=settings.release_lease_s),
                                overrides=config_cache.get)
        cleaner = Cleaner(db, clock, job_retention_s=settings.job_retention_s)
        scheduler = Scheduler(
            db, clock, {THROTTLE_JOB_KIND: worker, CLEANER_KIND: cleaner},
            SchedulerConfig(workers=settings.workers, poll_interval_s=settings.poll_interval_s, lease_s=settings.job_lease_s),
        )
        leadership = Leadership(db, clock, "cron", scheduler.owner, ttl_s=settings.leader_ttl_s)
        cron = Cron(db, clock, leadership, [CLEANER_CRON])
        app = create_app(WebDeps(
            db=db, clock=clock, batcher=batcher, tokens=tokens, client=client,
            public_url=settings.effective_public_url, client_id=settings.hubspot_client_id,
            client_secret=client_secret, authorize_url=settings.hubspot_authorize_url,
            block_duration=settings.block_duration,
            admin_token=settings.admin_token.get_secret_value() if settings.admin_token else None,
            signature_versions=settings.accepted_signatures,
        ))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_resign_on_exit, leadership)
            await nursery.start(batcher.run)
            await nursery.start(portal_queues.run)
            await nursery.start(listen, database_url, {CONFIG_CHANNEL: config_cache.invalidate})
            await nursery.start(scheduler.run)
            await nursery.start(leadership.run)
            await nursery.start(cron.run)
            try:
                url = await nursery.start(serve, app, settings.bind)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot listen on {settings.bind}: {exc.strerror or exc}") from None
            log.info("daemon.ready", url=url, owner=scheduler.owner)
            task_status.started(RunningDaemon(url, db, batcher, scheduler, portal_queues, tokens, leadership, cleaner))
    finally:
        log.info("daemon.stopped")
        with trio.CancelScope(shield=True):
            await client.aclose()
        db.dispose()


async def _resign_on_exit(leadership: Leadership) -> None:
    """Resign leadership when the daemon stops, so another daemon leads at once."""
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await leadership.resign()
