"""The control plane: what operators (the CLI, the operator API, ``/admin``) and the HubSpot
app's own pages do to queues, overrides, jobs and portals — one implementation, several
shells. Each function is one transaction's work (``fn(conn, …)``); a change that running
daemons must notice is written with what makes them notice at once (a NOTIFY, a woken job).
"""

from __future__ import annotations

import datetime as dt
from typing import Any


class NotFound(Exception):
    """The named queue, override or job does not exist (HTTP 404, CLI exit 1)."""


class Conflict(Exception):
    """The action does not apply in the object's current state, e.g. retrying a completed
    job (HTTP 409, CLI exit 1)."""


def jsonable(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with datetimes as ISO-8601 strings."""
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in record.items()}


from throttled.control.jobs import (  # noqa: E402
    JOB_STATES,
    MAX_JOBS,
    cancel_job,
    job_json,
    list_jobs,
    retry_job,
)
from throttled.control.overrides import delete_config, get_config, preview_config, set_config  # noqa: E402
from throttled.control.portals import PortalOverview, lift_portal_hold, list_portals, portal_installed  # noqa: E402
from throttled.control.queues import (  # noqa: E402
    QueueOverview,
    drain_queue,
    expiring_for_action,
    list_queues,
    pause_queue,
    purge_queue,
    release_history,
    resume_queue,
    show_queue,
)

__all__ = ["JOB_STATES", "MAX_JOBS", "Conflict", "NotFound", "PortalOverview", "QueueOverview", "cancel_job",
           "delete_config", "drain_queue", "expiring_for_action", "get_config", "job_json", "jsonable",
           "lift_portal_hold", "list_jobs", "list_portals", "list_queues", "pause_queue", "portal_installed", "preview_config",
           "purge_queue", "release_history", "resume_queue", "retry_job", "set_config", "show_queue"]
