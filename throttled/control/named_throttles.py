"""The customer's named throttles: create, edit, activate, deactivate, delete.

Use cases behind the customer page (``web/customer``); each runs in one transaction. An
edit takes effect at once for records already held: the shared queue's row gets the new
settings and its job is woken (a higher rate opens slots now). Deactivating or deleting
stops new records only (``ingest/named.py`` answers them with a clear outcome); what is held
keeps being released at the throttle's settings.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Connection

from throttled.db import named_throttles as named_sql
from throttled.db import queues as queues_sql
from throttled.ingest.inputs import NamedThrottleInput
from throttled.states import NamedThrottleState
from throttled.throttle.job import wake_throttle_job
from throttled.throttle.policy import stored_columns
from throttled.throttle.queue_ids import shared_queue


class NamedThrottleTaken(Exception):
    """A live named throttle of the portal already has that slug."""


class NamedThrottleNotFound(Exception):
    """The portal has no live named throttle of that slug (the web layer answers 404)."""


def create_named(conn: Connection, portal_id: int, item: NamedThrottleInput, now: dt.datetime) -> None:
    """Create an active named throttle (re-using a deleted one's slug).

    Raises:
        NamedThrottleTaken: a live one has the slug.
    """
    if not named_sql.save_named(conn, portal_id, item.slug, item.display_name, stored_columns(item.settings), now,
                                create=True):
        raise NamedThrottleTaken(item.slug)
    _apply(conn, portal_id, item, now)


def update_named(conn: Connection, portal_id: int, item: NamedThrottleInput, now: dt.datetime) -> None:
    """Change a live named throttle's name and settings; its queue follows at once.

    Raises:
        NamedThrottleNotFound: no live one of ``item.slug`` in the portal.
    """
    if not named_sql.save_named(conn, portal_id, item.slug, item.display_name, stored_columns(item.settings), now,
                                create=False):
        raise NamedThrottleNotFound(item.slug)
    _apply(conn, portal_id, item, now)


def set_named_state(conn: Connection, portal_id: int, slug: str, state: NamedThrottleState, now: dt.datetime) -> None:
    """Activate, deactivate or delete a live named throttle.

    Raises:
        NamedThrottleNotFound: no live one of ``slug`` in the portal.
    """
    if not named_sql.set_named_state(conn, portal_id, slug, state, now):
        raise NamedThrottleNotFound(slug)


def _apply(conn: Connection, portal_id: int, item: NamedThrottleInput, now: dt.datetime) -> None:
    """Give the shared queue and its partitions, if records ever waited there, the named
    throttle's settings (a queue is made on the first record that names it)."""
    changed = queues_sql.set_family_settings(conn, str(shared_queue(portal_id, item.slug)),
                                             stored_columns(item.settings), now)
    if changed:
        wake_throttle_job(conn, changed, now)
