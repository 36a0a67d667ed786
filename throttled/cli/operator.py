"""``throttled queues``, ``throttled jobs`` and ``throttled portals``: operator commands over
the database.

They act through the control plane (``throttled/control/``), the same functions as the
operator API, and reach running daemons through the database (NOTIFY, woken jobs). Tables for
people, ``--json`` for scripts; a missing queue or job exits 1 with one line.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console
from rich.table import Column, Table
from sqlalchemy.engine import Connection

from throttled import control
from throttled.cli.common import (
    ID,
    at_database_time,
    config_option,
    in_database,
    json_option,
    operator_errors,
)
from throttled.control import JOB_STATES, MAX_JOBS, QueueOverview
from throttled.db.jobs import JobInfo
from throttled.states import QueueState


@click.group("queues")
def queues_group() -> None:
    """Throttled queues: backlog, rate, state; pause, resume, drain, purge."""


@queues_group.command("list")
@click.option("--portal", "portal_id", type=ID, help="Only this portal's queues.")
@config_option
@json_option
@operator_errors
def queues_list(portal_id: int | None, config_file: Path | None, as_json: bool) -> None:
    """List queues with backlog, rate, state and last failure.

    "will expire": held records whose HubSpot block ends before their forecast turn at the
    settings in force (N+ = at least N; `queues show` says more). "refused": webhooks answered
    QUEUE_TOO_LONG or RELEASE_AFTER_TOO_LATE (not held; HubSpot's retries included)."""
    overviews = in_database(config_file, control.list_queues, portal_id)
    if as_json:
        click.echo(json.dumps([o.as_json() for o in overviews], indent=2))
        return
    table = Table(_id_column("queue", [o.queue.queue_id for o in overviews]),
                  "rate", "mode", "state", "pending", "in flight", "released 1 h", "will expire", "refused", "last failure")
    for o in overviews:
        table.add_row(o.queue.queue_id, _rate(o), o.mode, _state(o), str(o.counts.get("pending", 0)),
                      str(o.counts.get("releasing", 0)), str(o.counts.get("released_last_hour", 0)),
                      _expiring_count(o), str(o.queue.refused), o.queue.last_failure_reason or "")
    _console().print(table)


def _id_column(header: str, ids: list[str]) -> Column:
    """A column that never shortens the ids operators copy into other commands."""
    return Column(header, no_wrap=True, min_width=max([len(header), *map(len, ids)]))


def _console() -> Console:
    # Piped output (grep, less) is not squeezed into 80 columns: rows stay one line each.
    return Console() if sys.stdout.isatty() else Console(width=250)


def _queue_command(name: str, fn: Callable[[Connection, str, dt.datetime], QueueOverview] | None,
                   help_text: str) -> click.Command:
    @queues_group.command(name, help=help_text)
    @click.argument("queue_id")
    @config_option
    @json_option
    @operator_errors
    def command(queue_id: str, config_file: Path | None, as_json: bool) -> None:
        overview = at_database_time(config_file, fn, queue_id) if fn else in_database(config_file, control.show_queue, queue_id)
        if as_json:
            click.echo(json.dumps(overview.as_json(), indent=2))
        else:
            _print_queue(overview)
    return command


_queue_command("show", None, "Show one queue: settings, state, backlog by state, override.")
_queue_command("pause", control.pause_queue, "Stop releasing from QUEUE_ID (the backlog is kept).")
_queue_command("resume", control.resume_queue,
               "Release again at the rate; also lifts the queue's hold (a portal's hold: portals lift-hold).")


@queues_group.command("drain")
@click.argument("queue_id")
@click.option("--wait", is_flag=True, help="Show progress until the backlog is released (needs a running daemon).")
@config_option
@json_option
@operator_errors
def queues_drain(queue_id: str, wait: bool, config_file: Path | None, as_json: bool) -> None:
    """Release the whole backlog of QUEUE_ID now, ignoring the rate."""
    overview = at_database_time(config_file, control.drain_queue, queue_id)
    if wait:
        _wait_drained(config_file, queue_id, overview.backlog)
        overview = in_database(config_file, control.show_queue, queue_id)
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
            backlog = in_database(config_file, control.show_queue, queue_id).backlog
            progress.update(task, completed=max(0, total - backlog))
            if backlog == 0:
                return
            time.sleep(0.5)


@queues_group.command("purge")
@click.argument("queue_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@config_option
@operator_errors
def queues_purge(queue_id: str, yes: bool, config_file: Path | None) -> None:
    """Cancel QUEUE_ID's pending backlog (never completed; HubSpot lets them go on expiry)."""
    if not yes:
        click.confirm(f"cancel every pending enrollment of {queue_id}?", abort=True)
    cancelled = at_database_time(config_file, control.purge_queue, queue_id)
    click.echo(f"{cancelled} pending enrollments of {queue_id} cancelled")


def _print_queue(o: QueueOverview) -> None:
    table = Table(show_header=False)
    q = o.queue
    hours = o.settings.hours
    window = hours.describe() if hours else "-"
    rows = [("queue", q.queue_id), ("portal", str(q.portal_id)), ("action", str(q.action_id or "-")),
            ("rate", _rate(o)), ("mode", o.mode), ("state", _state(o)), ("window", window),
            ("failures in a row", str(q.consecutive_failures)), ("last failure", q.last_failure_reason or "-"),
            ("executions", ", ".join(f"{k} {v}" for k, v in sorted(o.counts.items())) or "none"),
            ("will expire before their turn", _expiring(o)), ("refused as too long", _refused(o)),
            *(("warning", w) for w in o.warnings if w.startswith("stopped")),
            ]
    for key, value in rows:
        table.add_row(key, value)
    _console().print(table)


def _expiring(o: QueueOverview) -> str:
    """Held records whose block ends before their forecast release, at the settings in force."""
    if o.expiring is None or not o.expiring.count:
        return "0"
    scope = "" if o.expiring.complete else f"at least (the first {o.expiring.scanned} in line looked at) "
    return f"{scope}{o.expiring.count}: their blocks end before their turn (raise the rate, or drain)"


def _expiring_count(o: QueueOverview) -> str:
    if o.expiring is None:
        return "0"
    return str(o.expiring.count) + ("" if o.expiring.complete else "+")


def _refused(o: QueueOverview) -> str:
    q = o.queue
    if not q.refused:
        return "0"
    when = f", last at {q.refused_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}Z" if q.refused_at else ""
    return f"{q.refused}{when} (answers, HubSpot's retries included): no block up to THROTTLED_BLOCK_MAX covered them"


def _rate(o: QueueOverview) -> str:
    limit, period, unit, overridden = o.rate
    per = unit.removesuffix("s") if period == 1 else f"{period} {unit}"
    partitions = f" per owner ({o.partitions} partitions)" if o.partitions else ""
    return f"{limit} per {per}{partitions}" + (" (override)" if overridden else "")


def _state(o: QueueOverview) -> str:
    q = o.queue
    held = q.state == QueueState.ON_HOLD and q.on_hold_until is not None
    state = f"on hold until {q.on_hold_until:%Y-%m-%d %H:%M:%S}Z" if held else q.state
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
@operator_errors
def jobs_list(state: str | None, kind: str | None, limit: int, config_file: Path | None, as_json: bool) -> None:
    """List jobs, newest first, with attempts and their last error."""
    jobs = in_database(config_file, control.list_jobs, state, kind, limit)
    if as_json:
        click.echo(json.dumps([control.job_json(j) for j in jobs], indent=2))
        return
    keys = [str(j.args.get("queue_id") or j.unique_key or "") for j in jobs]
    table = Table("id", "kind", "state", "attempt", "snoozed", "scheduled at", _id_column("queue / key", keys), "last error")
    for j in jobs:
        table.add_row(str(j.id), j.kind, j.state, f"{j.attempt}/{j.max_attempts}", str(j.snoozed),
                      f"{j.scheduled_at:%Y-%m-%d %H:%M:%S}Z", str(j.args.get("queue_id") or j.unique_key or ""),
                      str(j.errors[-1].get("error", "")) if j.errors else "")
    _console().print(table)


def _job_command(name: str, fn: Callable[[Connection, int, dt.datetime], JobInfo], help_text: str,
                 verb: str) -> click.Command:
    @jobs_group.command(name, help=help_text)
    @click.argument("job_id", type=ID)
    @config_option
    @json_option
    @operator_errors
    def command(job_id: int, config_file: Path | None, as_json: bool) -> None:
        job = at_database_time(config_file, fn, job_id)
        if as_json:
            click.echo(json.dumps(control.job_json(job), indent=2))
        else:
            click.echo(f"job {job.id} ({job.kind}) {verb}: now {job.state}")
    return command


_job_command("retry", control.retry_job, "Run JOB_ID now (a discarded, cancelled, retryable or scheduled job).", "retried")
_job_command("cancel", control.cancel_job, "Cancel JOB_ID (a live job; a running handler's outcome is ignored).", "cancelled")


# -- portals ------------------------------------------------------------------------------


@click.group("portals")
def portals_group() -> None:
    """Installed HubSpot portals."""


@portals_group.command("list")
@config_option
@json_option
@operator_errors
def portals_list(config_file: Path | None, as_json: bool) -> None:
    """List portals with their status, token expiry and hold (never the tokens)."""
    records = [o.as_json() for o in at_database_time(config_file, control.list_portals)]
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
    _console().print(table)


@portals_group.command("lift-hold")
@click.argument("portal_id", type=ID)
@config_option
@operator_errors
def portals_lift_hold(portal_id: int, config_file: Path | None) -> None:
    """Lift PORTAL_ID's hold (HubSpot refused it as a whole and the cause is fixed): its queues
    release again at once. A hold also ends by itself, or when the app is installed again."""
    was_held = at_database_time(config_file, control.lift_portal_hold, portal_id)
    click.echo(f"portal {portal_id}: hold lifted" if was_held else f"portal {portal_id} was not held")
