"""throttled — hold HubSpot workflow enrollments and release them at a configured rate.

The package is laid out by subsystem (see ``../shared/docs/design.md``):
``web`` (HTTP in), ``ingest`` (payload parsing and the group-commit batcher), ``jobs``
(the Postgres job table's scheduler), ``throttle`` (rate windows and the per-queue worker),
``hubspot`` (signatures, OAuth, the callbacks client, per-portal send queues), ``crypto``
(token encryption), ``db`` (engine, schema, and all SQL, one module per table family),
``sandbox`` (a local HubSpot stand-in) and ``demo``.
"""

__version__ = "0.1.0"
