"""The ``throttled`` command line (click).

``run`` serves; ``migrate`` applies the schema; ``sandbox`` runs the local HubSpot
stand-in; ``demo`` shows the whole job on this machine; ``keys generate`` makes an
encryption key; ``portals list`` shows installed portals; ``config`` and ``queues`` are the
operator commands (``throttled/admin/cli.py``). Bad settings stop with one line
naming the variable and exit status 2.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from pathlib import Path

import click
import trio

from throttled import __version__
from throttled.db.engine import DatabaseUnavailable, SchemaMissing
from throttled.db.schema import SchemaNotCurrent
from throttled.settings import Settings, SettingsError, load_settings

config_option = click.option(
    "--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
    help="TOML file of settings (environment variables win).",
)


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"throttled: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn):
    """Turn settings, database and start-up errors into one line on stderr and an exit
    status (2 for settings, 1 otherwise), also when trio wraps them in an ExceptionGroup."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            problem = _known_problem(exc)
            if problem is None:
                raise
            _fail(*problem)
    return wrapper


def _known_problem(exc: BaseException) -> tuple[str, int] | None:
    """``(message, exit status)`` for an error worth one line, else ``None``."""
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _known_problem(exc.exceptions[0])
    if isinstance(exc, SettingsError):
        return str(exc), 2
    if isinstance(exc, DatabaseUnavailable):
        return f"database unavailable: {exc}", 1
    if isinstance(exc, (SchemaMissing, SchemaNotCurrent)):
        return str(exc), 1
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), 1
    if isinstance(exc, RuntimeError) and "embedded PostgreSQL" in str(exc):
        return str(exc), 1
    return None


def database_url(settings: Settings) -> str:
    """``THROTTLED_DATABASE_URL``, or the embedded PostgreSQL's URL (started if needed)."""
    if settings.database_url:
        return settings.database_url
    from throttled.db.embedded import start_embedded

    return start_embedded(settings.data_dir)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="throttled")
def main() -> None:
    """throttled — hold HubSpot workflow enrollments and release them at a set rate.

    Settings come from environment variables (see README.md for the table) and an optional
    --config TOML file.
    """


@main.command()
@config_option
@handle_errors
def run(config_file: Path | None) -> None:
    """Serve HubSpot's webhooks and release held enrollments until SIGTERM/SIGINT."""
    from throttled import logs
    from throttled.daemon import run_daemon

    settings = load_settings(config_file)
    settings.require("hubspot_client_secret")
    settings.key_ring()
    logs.configure(settings.log_level)
    url = database_url(settings)

    async def main_task() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def daemon_then_exit(task_status=trio.TASK_STATUS_IGNORED):
                    await run_daemon(settings, url, task_status=task_status)
                    nursery.cancel_scope.cancel()  # stopped: no more signals to wait for

                daemon = await nursery.start(daemon_then_exit)
                nursery.start_soon(_stop_on_signals, signals, daemon, nursery.cancel_scope)

    trio.run(main_task)


async def _stop_on_signals(signals, daemon, scope: trio.CancelScope) -> None:
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


@main.command()
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


@main.command()
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
def sandbox(bind: str, client_id: str, client_secret: str, app_id: int, portal_id: int,
            developer_api_key: str, faults_json: str | None) -> None:
    """Run the local HubSpot API stand-in (OAuth, callbacks, rate limits, action definitions,
    fault injection) over HTTP."""
    from throttled.sandbox import Faults, SandboxConfig, SandboxError, serve_sandbox

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
            running = await nursery.start(functools.partial(serve_sandbox, config, bind, faults=faults))
            click.echo(f"sandbox listening on {running.url} (HUBSPOT_API_BASE={running.url})")

    trio.run(main_task)


@main.command()
@click.option("--enrollments", type=int, default=600, show_default=True, help="Enrollments to send in all.")
@handle_errors
def demo(enrollments: int) -> None:
    """Run the main job end to end on this machine: sandbox + daemon + ~600 signed enrollments.

    Uses THROTTLED_DATABASE_URL if set, else the embedded PostgreSQL. Exits 0 only if every
    enrollment was released and no rate window was exceeded.
    """
    from throttled.demo.run import run_demo

    ok = trio.run(run_demo, enrollments)
    sys.exit(0 if ok else 1)


@main.group()
def keys() -> None:
    """Encryption keys for tokens at rest."""


@keys.command("generate")
@click.option("--id", "key_id", help="Print an entry for THROTTLED_ENCRYPTION_KEYS: ID:KEY.")
def keys_generate(key_id: str | None) -> None:
    """Print a new key: base64 of 32 random bytes (for THROTTLED_ENCRYPTION_KEY), or
    ID:KEY with --id (an entry of the THROTTLED_ENCRYPTION_KEYS ring)."""
    from throttled.crypto import generate_key

    click.echo(f"{key_id}:{generate_key()}" if key_id else generate_key())


@keys.command("rotate")
@config_option
@click.option("--batch", type=click.IntRange(1, 10_000), default=100, show_default=True, help="Portals per transaction.")
@handle_errors
def keys_rotate(config_file: Path | None, batch: int) -> None:
    """Re-encrypt every portal's tokens with the current key of THROTTLED_ENCRYPTION_KEYS.

    Safe while daemons serve, once every daemon's ring holds the new key. Afterwards the old
    key can be dropped from the ring.
    """
    from rich.progress import Progress

    from throttled.crypto import DecryptionError
    from throttled.crypto.rotation import rotate_all
    from throttled.db.engine import Database

    settings = load_settings(config_file)
    ring = settings.key_ring()
    db = Database(database_url(settings), pool_size=1)
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task(f"re-encrypting with key {ring.key_id}", total=None)
            done = rotate_all(db, ring, batch, lambda n, total: progress.update(task, completed=n, total=total))
    except DecryptionError as exc:
        _fail(f"{exc}: add that key to THROTTLED_ENCRYPTION_KEYS and run again (nothing of the failed batch was written)", 1)
    except TimeoutError as exc:
        _fail(str(exc), 1)
    finally:
        db.dispose()
    click.echo(f"{done} portals re-encrypted; every token is under key {ring.key_id}")


@main.group()
def portals() -> None:
    """Installed HubSpot portals."""


@portals.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@handle_errors
def portals_list(config_file: Path | None, as_json: bool) -> None:
    """List portals with their status and token expiry (never the tokens)."""
    from rich.console import Console
    from rich.table import Table

    from throttled.admin import operations
    from throttled.db.engine import Database
    from throttled.db.time import database_now

    settings = load_settings(config_file)
    db = Database(database_url(settings), pool_size=1)
    try:
        overviews = db.transaction_sync(lambda conn: operations.list_portals(conn, database_now(conn)))
    finally:
        db.dispose()
    records = [o.as_json() for o in overviews]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    table = Table("portal", "status", "token", "scopes", "key", "updated", "held until", "hold reason")
    for column in table.columns:
        column.overflow = "fold"  # never cut a value with "…", even in a narrow or piped terminal
    for r in records:
        table.add_row(str(r["portal_id"]), r["status"], f'{r["token_status"]} {r["expires_at"] or ""}'.strip(),
                      " ".join(r["scopes"]), r["key_id"] or "-", r["updated_at"], r["held_until"] or "-",
                      r["hold_reason"] or "-")
    Console().print(table)


@main.group()
def hubspot() -> None:
    """The HubSpot app: the custom workflow action definition."""


@hubspot.command("action-definition")
@config_option
@click.option("--register", is_flag=True, help="Create it on the app (HUBSPOT_APP_ID, HUBSPOT_DEVELOPER_API_KEY).")
@handle_errors
def hubspot_action_definition(config_file: Path | None, register: bool) -> None:
    """Print the Throttle action definition (actionUrl from THROTTLED_PUBLIC_URL), or register it."""
    from throttled.hubspot.errors import HubSpotError
    from throttled.hubspot.registration import action_definition
    from throttled.hubspot.registration import register as register_action

    settings = load_settings(config_file)
    definition = action_definition(settings.effective_public_url)
    if not register:
        click.echo(json.dumps(definition, indent=2))
        return
    settings.require("hubspot_app_id", "hubspot_developer_api_key")
    try:
        created = trio.run(register_action, settings.hubspot_api_base, settings.hubspot_app_id,
                           settings.secret("hubspot_developer_api_key"), definition)
    except HubSpotError as exc:
        _fail(f"registration failed: {exc}", 1)
    click.echo(f"registered action {created.get('id')} on app {settings.hubspot_app_id} ({definition['actionUrl']})")


def _register_admin_commands() -> None:
    from throttled.admin.cli import config_group, jobs_group, queues_group

    main.add_command(config_group)
    main.add_command(queues_group)
    main.add_command(jobs_group)


_register_admin_commands()
