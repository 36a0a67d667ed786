"""``throttled config``: check the settings; operator overrides of a step's throttle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from throttled import control
from throttled.cli.common import (
    ID,
    at_database_time,
    config_option,
    handle_errors,
    in_database,
    operator_errors,
)
from throttled.db.queues import ConfigRow
from throttled.ingest.inputs import TIME_UNITS, parse_override
from throttled.throttle.outlook import Expiring


@click.group("config")
def config_group() -> None:
    """Check the settings; operator overrides of a step's throttle (per portal and action id)."""


@config_group.command("check")
@config_option
@click.option("--database", "check_database", is_flag=True,
              help="Also connect and check that the schema has every migration.")
@handle_errors
def config_check(config_file: Path | None, check_database: bool) -> None:
    """Validate the settings (environment + --config) as `throttled run` would, without starting.

    Prints the effective values (secrets shown only as set/unset); exits 2 on a bad setting,
    1 when --database finds the database unreachable or migrations missing.
    """
    from throttled.db.schema import SchemaNotCurrent, latest, pending
    from throttled.db.urls import shown_url
    from throttled.settings import ENV_NAMES, load_settings
    from throttled.settings_rules import deployment_warnings
    from throttled.web.edge_limits import Edge, raise_open_file_limit

    settings = load_settings(config_file)
    settings.require("hubspot_client_secret")
    ring = settings.key_ring()
    width = max(len(variable) for variable in ENV_NAMES.values())  # one column for every value
    for field, variable in ENV_NAMES.items():
        value = getattr(settings, field)
        if hasattr(value, "get_secret_value"):
            value = "(set)"
        elif field == "database_url" and value:
            value = shown_url(value)
        elif field == "max_connections" and value == 0:
            raise_open_file_limit()  # as `run` does first
            value = f"0 (derived from the open-file limit: {Edge.derived().limits.max_connections})"
        click.echo(f"{variable:{width}} {'(unset)' if value is None else value}")
    click.echo(f"{'key ring':{width}} current {ring.key_id}, {len(ring.key_ids)} key(s)")
    for warning in deployment_warnings(settings):
        click.echo(f"warning: {warning}", err=True)
    if check_database:
        missing = in_database(config_file, pending)
        if missing:
            raise SchemaNotCurrent(f"the database lacks migration {', '.join(m.name for m in missing)}: "
                                   "run `throttled migrate`")
        click.echo(f"database reachable, schema current ({latest().name})")
    click.echo("config OK")


@config_group.command("get")
@click.argument("portal_id", type=ID)
@click.argument("action_id", type=ID)
@config_option
@operator_errors
def config_get(portal_id: int, action_id: int, config_file: Path | None) -> None:
    """Show the override of PORTAL_ID / ACTION_ID."""
    config = in_database(config_file, control.get_config, portal_id, action_id)
    click.echo(json.dumps(_config_json(config), indent=2))


@config_group.command("set")
@click.argument("portal_id", type=ID)
@click.argument("action_id", type=ID)
@click.option("--max-throughput", type=int, help="Releases per period.")
@click.option("--time-period", type=int, help="Length of the period, in --time-unit.")
@click.option("--time-unit", type=click.Choice(TIME_UNITS))
@click.option("--mode", type=click.Choice(["burst", "smooth"]))
@click.option("--dry-run", is_flag=True, help="Only say which held records would expire before their turn; save nothing.")
@config_option
@operator_errors
def config_set(portal_id: int, action_id: int, max_throughput: int | None, time_period: int | None, time_unit: str | None,
               mode: str | None, dry_run: bool, config_file: Path | None) -> None:
    """Override the throttle of PORTAL_ID / ACTION_ID (beats the steps' inputs).

    Held records keep the HubSpot block they were given: a slower rate can make some of them
    expire before their turn. The command says how many (use --dry-run to see it first).
    """
    fields = {"max_throughput": max_throughput, "time_period": time_period, "time_unit": time_unit, "mode": mode}
    override = parse_override({k: v for k, v in fields.items() if v is not None})
    if dry_run:
        _warn_expiring(at_database_time(config_file, control.preview_config, portal_id, action_id, override), "would")
        click.echo("dry run: nothing saved")
        return
    config = at_database_time(config_file, control.set_config, portal_id, action_id, override)
    click.echo(json.dumps(_config_json(config), indent=2))
    _warn_expiring(at_database_time(config_file, control.expiring_for_action, portal_id, action_id), "will")


@config_group.command("delete")
@click.argument("portal_id", type=ID)
@click.argument("action_id", type=ID)
@config_option
@operator_errors
def config_delete(portal_id: int, action_id: int, config_file: Path | None) -> None:
    """Remove the override of PORTAL_ID / ACTION_ID (the steps' own rates apply again; the
    command says how many held records that makes expire before their turn)."""
    at_database_time(config_file, control.delete_config, portal_id, action_id)
    click.echo(f"override of portal {portal_id}, action {action_id} deleted")
    _warn_expiring(at_database_time(config_file, control.expiring_for_action, portal_id, action_id), "will")


def _warn_expiring(found: dict[str, Expiring], verb: str) -> None:
    """One stderr line per queue whose held records' blocks end before their turn: HubSpot's
    blocks were chosen at each webhook and cannot be extended."""
    for queue_id, e in found.items():
        if e.count:
            click.echo(f"warning: {queue_id}: {'' if e.complete else 'at least '}{e.count} held records {verb} expire "
                       "before their turn at this rate (their HubSpot blocks cannot be extended)", err=True)


def _config_json(config: ConfigRow) -> dict[str, Any]:
    return {"portal_id": config.portal_id, "action_id": config.action_id, "max_throughput": config.max_throughput,
            "time_period": config.time_period, "time_unit": config.time_unit, "mode": config.mode,
            "updated_at": config.updated_at.isoformat()}
