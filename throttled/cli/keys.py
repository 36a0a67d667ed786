"""``throttled keys``: the key ring that encrypts tokens at rest; ``throttled hubspot``: the
custom action's definition."""

from __future__ import annotations

import json
from pathlib import Path

import click
import trio

from throttled.cli.common import config_option, database_url, fail, handle_errors
from throttled.settings import load_settings


@click.group()
def keys() -> None:
    """Encryption keys for tokens at rest."""


@keys.command("generate")
@click.option("--id", "key_id", help="Print an entry for THROTTLED_ENCRYPTION_KEYS: ID:KEY.")
def keys_generate(key_id: str | None) -> None:
    """Print a new key: base64 of 32 random bytes (for THROTTLED_ENCRYPTION_KEY, or as a
    THROTTLED_ADMIN_TOKEN / THROTTLED_PAGES_TOKEN), or ID:KEY with --id (an entry of the
    THROTTLED_ENCRYPTION_KEYS ring)."""
    from throttled.crypto import generate_key
    from throttled.crypto.tokens import check_key_id

    if key_id is not None:
        try:
            check_key_id(key_id)
        except ValueError as exc:  # a new-user trial: "bad:id" printed an entry the ring then refused
            raise click.BadParameter(str(exc), param_hint="--id") from None
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
        fail(f"{exc}: add that key to THROTTLED_ENCRYPTION_KEYS and run again (nothing of the failed batch was written)", 1)
    except TimeoutError as exc:
        fail(str(exc), 1)
    finally:
        db.dispose()
    click.echo(f"{done} portals re-encrypted; every token is under key {ring.key_id}")


@click.group()
def hubspot() -> None:
    """The HubSpot app: the custom workflow action definition."""


@hubspot.command("action-definition")
@config_option
@click.option("--register", is_flag=True,
              help="Create it on the app, or update the app's action with the same actionUrl "
                   "(HUBSPOT_APP_ID, HUBSPOT_DEVELOPER_API_KEY).")
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
    app_id = settings.hubspot_app_id
    assert app_id is not None  # require() above
    try:
        answer, created = trio.run(register_action, settings.hubspot_api_base, app_id,
                                   settings.secret("hubspot_developer_api_key"), definition)
    except HubSpotError as exc:
        fail(f"registration failed: {exc}", 1)
    done = "registered" if created else "updated"
    click.echo(f"{done} action {answer.get('id')} on app {settings.hubspot_app_id} ({definition['actionUrl']})")
