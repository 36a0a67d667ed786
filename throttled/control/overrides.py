"""Operator overrides of a step's throttle, per (portal, action): read, set, delete — each
announced to every daemon's config cache (NOTIFY) and waking the queues it applies to."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Connection

from throttled.control import NotFound
from throttled.control.queues import expiring_for_action
from throttled.db import queues as queues_sql
from throttled.db.queues import ConfigRow
from throttled.ingest.inputs import Override
from throttled.throttle.job import wake_throttle_job
from throttled.throttle.outlook import Expiring


def get_config(conn: Connection, portal_id: int, action_id: int) -> ConfigRow:
    """The override for (portal, action). Raises :class:`NotFound`."""
    config = queues_sql.get_config(conn, portal_id, action_id)
    if config is None:
        raise NotFound(f"no override for portal {portal_id}, action {action_id}")
    return config


def set_config(conn: Connection, portal_id: int, action_id: int, override: Override, now: dt.datetime) -> ConfigRow:
    """Create or replace the override and make every daemon apply it now."""
    config = queues_sql.upsert_config(conn, ConfigRow(
        portal_id, action_id, override.max_throughput, override.time_period, override.time_unit, override.mode, now))
    _announce(conn, portal_id, action_id, now)
    return config


def preview_config(conn: Connection, portal_id: int, action_id: int, override: Override | None,
                   now: dt.datetime) -> dict[str, Expiring]:
    """What setting ``override`` (``None``: deleting the override) would do to the held
    records of the queues it applies to — ``{queue_id: Expiring}`` — without doing it: the
    change is made in a savepoint and rolled back (its NOTIFY and job wakes with it)."""
    savepoint = conn.begin_nested()
    try:
        if override is None:
            queues_sql.delete_config(conn, portal_id, action_id)
        else:
            set_config(conn, portal_id, action_id, override, now)
        return expiring_for_action(conn, portal_id, action_id, now)
    finally:
        savepoint.rollback()


def delete_config(conn: Connection, portal_id: int, action_id: int, now: dt.datetime) -> None:
    """Remove the override (the steps' inputs apply again). Raises :class:`NotFound`."""
    if not queues_sql.delete_config(conn, portal_id, action_id):
        raise NotFound(f"no override for portal {portal_id}, action {action_id}")
    _announce(conn, portal_id, action_id, now)


def _announce(conn: Connection, portal_id: int, action_id: int, now: dt.datetime) -> None:
    queues_sql.notify_config_change(conn, portal_id, action_id)
    for queue_id in queues_sql.queue_ids_for_action(conn, portal_id, action_id):
        wake_throttle_job(conn, queue_id, now)
