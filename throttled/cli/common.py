"""What every ``throttled`` command shares: the ``--config`` and ``--json`` options, one-line
errors with exit statuses, the database (configured or embedded) and running one
transaction on it at the database's time."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import click

from throttled.control import Conflict, NotFound
from throttled.db.engine import DatabaseUnavailable, SchemaMissing
from throttled.db.schema import SchemaNotCurrent
from throttled.ids import MAX_ID
from throttled.ingest.inputs import InvalidInput
from throttled.settings import Settings, SettingsError, load_settings

P = ParamSpec("P")
R = TypeVar("R")

config_option = click.option(
    "--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
    help="TOML file of settings (environment variables win).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (for scripts).")
class _Id(click.IntRange):
    """A portal, action or job id: a positive bigint. Its range reads ``1<=x<2^63`` in the
    help and in the out-of-range error, not the 19 digits of 2**63 - 1 (click asks
    ``_describe_range`` for both)."""

    name = "id"

    def __init__(self) -> None:
        super().__init__(1, MAX_ID)

    def _describe_range(self) -> str:
        return "1<=x<2^63"


#: Portal, action and job ids.
ID = _Id()


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``throttled: error: message`` on stderr and exit with ``code``."""
    click.echo(f"throttled: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn settings, database and start-up errors into one line on stderr and an exit
    status (2 for settings, 1 otherwise), also when trio wraps them in an ExceptionGroup."""
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            problem = _known_problem(exc)
            if problem is None:
                raise
            fail(*problem)
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


def database_url(settings: Settings, *, create_embedded: bool = False) -> str:
    """``THROTTLED_DATABASE_URL``, or the embedded PostgreSQL's URL (started if needed).

    Only ``run`` and ``demo`` pass ``create_embedded``: operator commands with no URL use an
    embedded database that ``run`` made, and never create one (as root, one would appear in
    ``/var/lib/throttled`` beside the real one, and the command would act on its emptiness).
    Raises RuntimeError (one line for the CLI) when there is none to use.
    """
    if settings.database_url:
        return settings.database_url
    from throttled.db.embedded import start_embedded

    return start_embedded(settings.data_dir, create=create_embedded)


def in_database(config_file: Path | None, fn: Callable[..., R], *args: Any) -> R:
    """Run ``fn(conn, *args)`` in one transaction on the configured database."""
    from throttled.db.engine import Database

    db = Database(database_url(load_settings(config_file)), pool_size=1)
    try:
        return db.transaction_sync(fn, *args)
    finally:
        db.dispose()


def at_database_time(config_file: Path | None, fn: Callable[..., R], *args: Any) -> R:
    """Run ``fn(conn, *args, now)`` in one transaction, ``now`` being the database's time —
    the time the daemons decide by (this host's clock may be off)."""
    from throttled.db.time import database_now

    return in_database(config_file, lambda conn: fn(conn, *args, database_now(conn)))


def operator_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """:func:`handle_errors`, and a missing object (exit 1) or a bad option (usage, exit 2)
    as one line."""
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (NotFound, Conflict) as exc:
            raise click.ClickException(str(exc)) from None
        except InvalidInput as exc:
            if exc.field == "body":  # the request as a whole (no options given), not one option
                raise click.UsageError("give --max-throughput, --time-period and --time-unit, and/or --mode") from None
            raise click.BadParameter(exc.message, param_hint=f"--{exc.field.replace('_', '-')}") from None
    return handle_errors(wrapper)
