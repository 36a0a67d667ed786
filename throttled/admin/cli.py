"""``throttled config …``, ``throttled queues …`` and ``throttled jobs …``: operator commands
over the database.

They act through the same functions as the HTTP APIs (``admin.operations``) and reach
running daemons through the database (NOTIFY, woken jobs). Tables for people, ``--json``
for scripts; a missing queue, override or job exits 1 with one line.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Column, Table

from throttled.admin import operations
from throttled.admin.operations import JOB_STATES, MAX_JOBS, Conflict, NotFound, QueueOverview
from throttled.db.time import database_now
from throttled.ingest.inputs import TIME_UNITS, InvalidInput, parse_override

config_option = click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
                             help="TOML file of settings (environment variables win).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def _run_now(config_file: Path | None, fn, *args):
    """Run ``fn(conn, *args, now)`` in one transaction, ``now`` being the database's time —
    the time the daemons decide by (this host's clock may be off)."""
    return _run(config_file, lambda conn: fn(conn, *args, database_now(conn)))


def _run(config_file: Path | None, fn, *args):
    """Run ``fn(conn, *args)`` in one transaction on the configured database."""
    from throttled.cli import database_url
    from throttled.db.engine import Database
    from throttled.settings import load_settings

    db = Database(database_url(load_settings(config_file)), pool_size=1)
    try:
        return db.transaction_sync(fn, *args)
    finally:
        db.dispose()


ID = click.IntRange(1, 2**63 - 1)  # portal and action ids are positive bigints


def _operator_errors(fn):
    from throttled.cli import handle_errors

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (NotFound, Conflict) as exc:
            raise click.ClickException(str(exc)) from None
        except InvalidInput as exc:
            if exc.field == "body":  # the request as a whole (no options given), not one option
                raise click.UsageError("give --max-throughput, --time-period and --time-unit, and/or --mode") from None
            raise click.BadParameter(exc.message, param_hint=f"--{exc.field.replace('_', '-')}") from None
    return handle_errors(wrapper)


# -- config ----------------------------------------------------------------------------


@click.group("config")
def config_group() -> None:
    """Operator overrides of a step's throttle (per portal and action id)."""


@config_group.command("check")
@config_option
@click.option("--database", "check_database", is_flag=True, help="Also connect and check the schema is applied.")
def config_check(config_file: Path | None, check_database: bool) -> None:
    """Validate the settings (environment + --config) as `throttled run` would, without starting.

    Prints the effective values (secrets shown only as set/unset); exits 2 on a bad setting.
    """
    from throttled.cli import handle_errors
    from throttled.settings import ENV_NAMES, load_settings

    @handle_errors
    def check() -> None:
        settings = load_settings(config_file)
        settings.require("hubspot_client_secret")
        ring = settings.key_ring()
        for field, variable in ENV_NAMES.items():
            value = getattr(settings, field)
            if hasattr(value, "get_secret_value"):
                value = "(set)"
            elif field == "database_url" and value:
                import sqlalchemy as sa
                value = sa.engine.make_url(value).render_as_string(hide_password=True)
            click.echo(f"{variable:32} {'(unset)' if value is None else value}")
        click.echo(f"{'key ring':32} current {ring.key_id}, {len(ring.key_ids)} key(s)")
        if check_database:
            from throttled.cli import database_url
            from throttled.db import jobs as jobs_sql
            from throttled.db.engine import Database

            db = Database(database_url(settings), pool_size=1)
            try:
                db.transaction_sync(jobs_sql.count_by_state)  # SchemaMissing if not migrated
            finally:
                db.dispose()
            click.echo("database reachable, schema applied")
        click.echo("config OK")

    check()


@config_group.command("get")
@click.argument("portal_id", type=ID)
@click.argument("action_id", type=ID)
@config_option
@_operator_errors
def config_get(portal_id: int, action_id: int, config_file: Path | None) -> None:
    """Show the override of PORTAL_ID / ACTION_ID."""
    config = _run(config_file, operations.get_config, portal_id, action_id)
    click.echo(json.dumps(_config_json(config), indent=2))


@config_group.command("set")
@click.argument("portal_id", type=ID)
@click.argument("action_id", type=ID)
@click.option("--max-throughput", type=int, help="Releases per period.")
@click.option("--time-period", type=int, help="Length of the period, in --time-unit.")
@click.option("--time-unit", type=click.Choice(TIME_UNITS))
@click.option("--mode", type=click.Choice(["burst", "smooth"]))
@config_option
@_operator_errors
def config_set(portal_id: int, action_id: int, max_throughput, time_period, time_unit, mode, config_file) -> None:
    """Override the throttle of PORTAL_ID / ACTION_ID (beats the steps' inputs)."""
    fields = {"max_throughput": max_throughput, "time_period": time_period, "time_unit": time_unit, "mode": mode}
    override = parse_override({k: v for k, v in fields.items() if v is not None})
    config = _run_now(config_file, operations.set_config, portal_id, action_id, override)
    click.echo(json.dumps(_config_json(config), indent=2))


@config_group.command("delete")
@click.argument("portal_id", type=ID)
@click.argument("action_id", type=ID)
@config_option
@_operator_errors
def config_delete(portal_id: int, action_id: int, config_file: Path | None) -> None:
    """Remove the override of PORTAL_ID / ACTION_ID."""
    _run_now(config_file, operations.delete_config, portal_id, action_id)
    click.echo(f"override of portal {portal_id}, action {action_id} deleted")


def _config_json(config) -> dict:
    return {"portal_id": config.portal_id, "action_id": config.action_id, "max_throughput": config.max_throughput,
            "time_period": config.time_period, "time_unit": config.time_unit, "mode": config.mode,
            "updated_at": config.updated_at.isoformat()}


# -- queues ------------------------------------------------------------------------------


@click.group("queues")
def queues_group() -> None:
    """Throttled queues: backlog, rate, state; pause, resume, drain, purge."""


@queues_group.command("list")
@click.option("--portal", "portal_id", type=ID, help="Only this portal's queues.")
@config_option
@json_option
@_operator_errors
def queues_list(portal_id: int | None, config_file: Path | None, as_json: bool) -> None:
    """List queues with backlog, rate, state and last failure."""
    overviews = _run(config_file, operations.list_queues, portal_id)
    if as_json:
        click.echo(json.dumps([o.as_json() for o in overviews], indent=2))
        return
    table = Table(_id_column("queue", [o.queue.queue_id for o in overviews]),
                  "rate", "mode", "state", "pending", "in flight", "released", "last failure")
    for o in overviews:
        table.add_row(o.queue.queue_id, _rate(o), o.mode, _state(o), str(o.counts.get("pending", 0)),
                      str(o.counts.get("releasing", 0)), str(o.counts.get("released", 0)), o.queue.last_failure_reason or "")
    _console().print(table)


def _id_column(header: str, ids: list[str]) -> Column:
    """A column that never shortens the ids operators copy into other commands."""
    return Column(header, no_wrap=True, min_width=max([len(header), *map(len, ids)]))


def _console() -> Console:
    # Piped output (grep, less) is not squeezed into 80 columns: rows stay one line each.
    return Console() if sys.stdout.isatty() else Console(width=250)


def _queue_command(name: str, fn, help_text: str):
    @queues_group.command(name, help=help_text)
    @click.argument("queue_id")
    @config_option
    @json_option
    @_operator_errors
    def command(queue_id: str, config_file: Path | None, as_json: bool) -> None:
        overview = _run_now(config_file, fn, queue_id) if fn else _run(config_file, operations.show_queue, queue_id)
        if as_json:
            click.echo(json.dumps(overview.as_json(), indent=2))
        else:
            _print_queue(overview)
    return command


_queue_command("show", None, "Show one queue: settings, state, backlog by state, override.")
_queue_command("pause", operations.pause_queue, "Stop releasing from QUEUE_ID (the backlog is kept).")
_queue_command("resume", operations.resume_queue, "Release again at the rate; also lifts a hold.")


@queues_group.command("drain")
@click.argument("queue_id")
@click.option("--wait", is_flag=True, help="Show progress until the backlog is released (needs a running daemon).")
@config_option
@json_option
@_operator_errors
def queues_drain(queue_id: str, wait: bool, config_file: Path | None, as_json: bool) -> None:
    """Release the whole backlog of QUEUE_ID now, ignoring the rate."""
    overview = _run_now(config_file, operations.drain_queue, queue_id)
    if wait:
        _wait_drained(config_file, queue_id, overview.backlog)
        overview = _run(config_file, operations.show_queue, queue_id)
    if as_json:
        click.echo(json.dumps(overview.as_json(), indent=2))
    else:
        _print_queue(overview)


def _wait_drained(config_file: Path | None, queue_id: str, total: int) -> None:
    """A progress bar until the queue's backlog is gone (released by the running daemons)."""
    import time

    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task(f"draining {queue_id}", total=max(total, 1))
        while True:
            backlog = _run(config_file, operations.show_queue, queue_id).backlog
            progress.update(task, completed=max(0, total - backlog))
            if backlog == 0:
                return
            time.sleep(0.5)


@queues_group.command("purge")
@click.argument("queue_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@config_option
@_operator_errors
def queues_purge(queue_id: str, yes: bool, config_file: Path | None) -> None:
    """Cancel QUEUE_ID's pending backlog (never completed; HubSpot lets them go on expiry)."""
    if not yes:
        click.confirm(f"cancel every pending enrollment of {queue_id}?", abort=True)
    cancelled = _run_now(config_file, operations.purge_queue, queue_id)
    click.echo(f"{cancelled} pending enrollments of {queue_id} cancelled")


def _print_queue(o: QueueOverview) -> None:
    table = Table(show_header=False)
    q = o.queue
    rows = [("queue", q.queue_id), ("portal", str(q.portal_id)), ("action", str(q.action_id or "-")),
            ("rate", _rate(o)), ("mode", o.mode), ("state", _state(o)),
            ("window", f"days {q.release_days:07b}, {q.release_start_minute}-{q.release_end_minute} min, {q.time_zone}" if q.release_days else "-"),
            ("failures in a row", str(q.consecutive_failures)), ("last failure", q.last_failure_reason or "-"),
            ("executions", ", ".join(f"{k} {v}" for k, v in sorted(o.counts.items())) or "none")]
    for key, value in rows:
        table.add_row(key, value)
    _console().print(table)


def _rate(o: QueueOverview) -> str:
    limit, period, unit, overridden = o.rate
    return f"{limit} per {period} {unit}" + (" (override)" if overridden else "")


def _state(o: QueueOverview) -> str:
    q = o.queue
    state = f"on hold until {q.on_hold_until:%Y-%m-%d %H:%M:%S}Z" if q.state == "on_hold" and q.on_hold_until else q.state
    return f"{state}; {o.portal_held}" if o.portal_held else state


# -- jobs ---------------------------------------------------------------------------------


@click.group("jobs")
def jobs_group() -> None:
    """The job table: list jobs; retry or cancel one."""


@jobs_group.command("list")
@click.option("--state", type=click.Choice(JOB_STATES), help="Only jobs in this state.")
@click.option("--kind", help="Only jobs of this kind (throttle, cleaner).")
@click.option("--limit", type=int, default=100, show_default=True, help=f"At most this many (1-{MAX_JOBS}), newest first.")
@config_option
@json_option
@_operator_errors
def jobs_list(state: str | None, kind: str | None, limit: int, config_file: Path | None, as_json: bool) -> None:
    """List jobs, newest first, with attempts and their last error."""
    jobs = _run(config_file, operations.list_jobs, state, kind, limit)
    if as_json:
        click.echo(json.dumps([operations.job_json(j) for j in jobs], indent=2))
        return
    keys = [str(j.args.get("queue_id") or j.unique_key or "") for j in jobs]
    table = Table("id", "kind", "state", "attempt", "snoozed", "scheduled at", _id_column("queue / key", keys), "last error")
    for j in jobs:
        table.add_row(str(j.id), j.kind, j.state, f"{j.attempt}/{j.max_attempts}", str(j.snoozed),
                      f"{j.scheduled_at:%Y-%m-%d %H:%M:%S}Z", str(j.args.get("queue_id") or j.unique_key or ""),
                      str(j.errors[-1].get("error", "")) if j.errors else "")
    _console().print(table)


def _job_command(name: str, fn, help_text: str, verb: str):
    @jobs_group.command(name, help=help_text)
    @click.argument("job_id", type=ID)
    @config_option
    @json_option
    @_operator_errors
    def command(job_id: int, config_file: Path | None, as_json: bool) -> None:
        job = _run_now(config_file, fn, job_id)
        if as_json:
            click.echo(json.dumps(operations.job_json(job), indent=2))
        else:
            click.echo(f"job {job.id} ({job.kind}) {verb}: now {job.state}")
    return command


_job_command("retry", operations.retry_job, "Run JOB_ID now (a discarded, cancelled, retryable or scheduled job).", "retried")
_job_command("cancel", operations.cancel_job, "Cancel JOB_ID (a live job; a running handler's outcome is ignored).", "cancelled")
