"""Running the service: ``run``, ``migrate``, ``sandbox`` and ``demo``."""

from __future__ import annotations

import functools
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
import trio

from throttled.cli.common import config_option, database_url, handle_errors
from throttled.settings import load_settings

if TYPE_CHECKING:  # for annotations only: the commands import the daemon where they run it
    from throttled.daemon import RunningDaemon


@click.command()
@config_option
@handle_errors
def run(config_file: Path | None) -> None:
    """Serve HubSpot's webhooks and release held enrollments until SIGTERM/SIGINT."""
    import structlog

    from throttled import logs
    from throttled.daemon import run_daemon
    from throttled.settings_rules import deployment_warnings

    settings = load_settings(config_file)
    settings.require("hubspot_client_secret")
    settings.key_ring()
    logs.configure(settings.log_level)
    for warning in deployment_warnings(settings):
        structlog.get_logger("throttled.settings").warning("settings.warning", message=warning)
    url = database_url(settings, create_embedded=True)

    async def main_task() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def daemon_then_exit(task_status: trio.TaskStatus[RunningDaemon] = trio.TASK_STATUS_IGNORED) -> None:
                    await run_daemon(settings, url, task_status=task_status)
                    nursery.cancel_scope.cancel()  # stopped: no more signals to wait for

                daemon = await nursery.start(daemon_then_exit)
                nursery.start_soon(_stop_on_signals, signals, daemon, nursery.cancel_scope)

    trio.run(main_task)


async def _stop_on_signals(signals: AsyncIterator[int], daemon: RunningDaemon, scope: trio.CancelScope) -> None:
    """First SIGTERM/SIGINT: graceful stop. A second one: stop at once."""
    async for _ in signals:
        if daemon.stop_requested.is_set():
            scope.cancel()
            return
        daemon.request_stop()


async def _cancel_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


@click.command()
@config_option
@handle_errors
def migrate(config_file: Path | None) -> None:
    """Apply the pending schema migrations, in order (each once; `run` does it too when its
    database role may)."""
    from throttled.db.engine import Database
    from throttled.db.schema import latest
    from throttled.db.schema import migrate as apply_migrations

    settings = load_settings(config_file)
    db = Database(database_url(settings), pool_size=1)
    try:
        applied = db.transaction_sync(apply_migrations)
    finally:
        db.dispose()
    if applied:
        click.echo(f"applied {', '.join(m.name for m in applied)} to {db!r}")
    else:
        click.echo(f"schema of {db!r} is current ({latest().name})")


@click.command()
@click.option("--bind", default="127.0.0.1:8090", show_default=True, help="host:port to listen on.")
@click.option("--client-id", envvar="HUBSPOT_CLIENT_ID", default="sandbox-client", show_default=True)
@click.option("--client-secret", envvar="HUBSPOT_CLIENT_SECRET", default="sandbox-secret", show_default=True)
@click.option("--app-id", envvar="HUBSPOT_APP_ID", type=int, default=1000, show_default=True)
@click.option("--portal-id", type=int, default=62515, show_default=True, help="Portal that authorize grants by default.")
@click.option("--developer-api-key", default="sandbox-dev-key", show_default=True,
              help="hapikey of the action-definition endpoints.")
@click.option("--faults", "faults_json", metavar="JSON",
              help='Faults in force from the start, e.g. \'{"error_rate": 0.1, "seed": 7}\' '
                   "(change them later at /_sandbox/faults).")
@handle_errors
def sandbox(bind: str, client_id: str, client_secret: str, app_id: int, portal_id: int,
            developer_api_key: str, faults_json: str | None) -> None:
    """Run the local HubSpot API stand-in (OAuth, callbacks, rate limits, action definitions,
    fault injection) over HTTP, and print the settings a daemon needs to use it.

    Test controls (not HubSpot's): GET /_sandbox/completions, GET /_sandbox/stats,
    GET|POST|DELETE /_sandbox/faults, POST /_sandbox/tokens/expire|revoke, POST /_sandbox/reset.
    """
    from throttled.daemon import listen_failure
    from throttled.sandbox import Faults, SandboxConfig, SandboxError, serve_sandbox

    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter("must be host:port, e.g. 127.0.0.1:8090", param_hint="--bind")
    try:
        faults = Faults().merged(json.loads(faults_json)) if faults_json else Faults()
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--faults") from None
    except SandboxError as exc:
        raise click.BadParameter(exc.body["message"], param_hint="--faults") from None
    config = SandboxConfig(client_id=client_id, client_secret=client_secret, app_id=app_id,
                           default_portal_id=portal_id, developer_api_key=developer_api_key)

    async def main_task() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_signal, nursery.cancel_scope)
            try:
                running = await nursery.start(functools.partial(serve_sandbox, config, bind, faults=faults))
            except (OSError, BaseExceptionGroup) as exc:
                raise listen_failure(exc, bind, "--bind") from None
            click.echo(f"sandbox listening on {running.url}; a daemon uses it with:")
            for name, value in (("HUBSPOT_API_BASE", running.url),
                                ("HUBSPOT_AUTHORIZE_URL", f"{running.url}/oauth/authorize"),
                                ("HUBSPOT_CLIENT_ID", client_id), ("HUBSPOT_CLIENT_SECRET", client_secret),
                                ("HUBSPOT_APP_ID", str(app_id)), ("HUBSPOT_DEVELOPER_API_KEY", developer_api_key)):
                click.echo(f"  export {name}={value}")

    trio.run(main_task)


@click.command()
@click.option("--enrollments", type=click.IntRange(min=1), default=600, show_default=True,
              help="Enrollments to send in all (at least 1).")
@handle_errors
def demo(enrollments: int) -> None:
    """Run the main job end to end on this machine: sandbox + daemon + ~600 signed enrollments.

    Uses THROTTLED_DATABASE_URL if set, else the embedded PostgreSQL. Exits 0 only if every
    enrollment was released and no rate window was exceeded.
    """
    from throttled.demo.run import run_demo

    ok = trio.run(run_demo, enrollments)
    sys.exit(0 if ok else 1)
