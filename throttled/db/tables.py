"""SQLAlchemy Core tables mirroring ``schema.sql`` (the schema's single source of truth).

``tests/integration/test_schema.py`` reflects a migrated database and checks these agree,
so a change to one without the other fails the suite.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, JSONB

metadata = sa.MetaData()
TZ = sa.DateTime(timezone=True)

portals = sa.Table(
    "portals", metadata,
    sa.Column("portal_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("status", sa.Text, nullable=False, server_default="active"),
    sa.Column("access_token", BYTEA),
    sa.Column("refresh_token", BYTEA),
    sa.Column("expires_at", TZ),
    sa.Column("scopes", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("key_id", sa.Text),
    sa.Column("rate_limited_until", TZ),
    sa.Column("installed_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    sa.Column("held_until", TZ),
    sa.Column("hold_reason", sa.Text),
    sa.Column("holds", sa.Integer, nullable=False, server_default="0"),
    sa.Column("refresh_claimed_by", sa.Text),
    sa.Column("refresh_claimed_until", TZ),
)

queues = sa.Table(
    "queues", metadata,
    sa.Column("queue_id", sa.Text, primary_key=True),
    sa.Column("portal_id", sa.BigInteger, nullable=False),
    sa.Column("action_id", sa.BigInteger),
    sa.Column("max_throughput", sa.Integer, nullable=False),
    sa.Column("time_period", sa.Integer, nullable=False),
    sa.Column("time_unit", sa.Text, nullable=False),
    sa.Column("mode", sa.Text, nullable=False, server_default="burst"),
    sa.Column("release_days", sa.SmallInteger),
    sa.Column("release_start_minute", sa.SmallInteger),
    sa.Column("release_end_minute", sa.SmallInteger),
    sa.Column("time_zone", sa.Text),
    sa.Column("state", sa.Text, nullable=False, server_default="active"),
    sa.Column("on_hold_until", TZ),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("holds", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_failure_reason", sa.Text),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    sa.Column("refused", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refused_at", TZ),
    sa.Column("expiring", sa.Integer),
    sa.Column("expiring_complete", sa.Boolean),
    sa.Column("first_block_end", TZ),
    sa.Column("expiring_checked_at", TZ),
    sa.Column("parent_queue_id", sa.Text),
    sa.Column("partition_key", sa.Text),
    sa.Index("queues_portal", "portal_id"),
    sa.Index("queues_parent", "parent_queue_id", postgresql_where=sa.text("parent_queue_id IS NOT NULL")),
)

throttle_configs = sa.Table(
    "throttle_configs", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("portal_id", sa.BigInteger, nullable=False),
    sa.Column("action_id", sa.BigInteger, nullable=False),
    sa.Column("max_throughput", sa.Integer),
    sa.Column("time_period", sa.Integer),
    sa.Column("time_unit", sa.Text),
    sa.Column("mode", sa.Text),
    sa.Column("updated_at", TZ, nullable=False),
    sa.UniqueConstraint("portal_id", "action_id", name="throttle_configs_portal_action"),
)

named_throttles = sa.Table(
    "named_throttles", metadata,
    sa.Column("portal_id", sa.BigInteger, primary_key=True),
    sa.Column("slug", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("max_throughput", sa.Integer, nullable=False),
    sa.Column("time_period", sa.Integer, nullable=False),
    sa.Column("time_unit", sa.Text, nullable=False),
    sa.Column("mode", sa.Text, nullable=False, server_default="burst"),
    sa.Column("release_days", sa.SmallInteger),
    sa.Column("release_start_minute", sa.SmallInteger),
    sa.Column("release_end_minute", sa.SmallInteger),
    sa.Column("time_zone", sa.Text),
    sa.Column("state", sa.Text, nullable=False, server_default="active"),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)

action_executions = sa.Table(
    "action_executions", metadata,
    sa.Column("callback_id", sa.Text, primary_key=True),
    sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False),
    sa.Column("portal_id", sa.BigInteger, nullable=False),
    sa.Column("queue_id", sa.Text, nullable=False),
    sa.Column("object_type", sa.Text),
    sa.Column("object_id", sa.Text),
    sa.Column("input_fields", JSONB, nullable=False, server_default="{}"),
    sa.Column("priority", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("not_before", TZ),
    sa.Column("received_at", TZ, nullable=False),
    sa.Column("expires_at", TZ, nullable=False),
    sa.Column("state", sa.Text, nullable=False, server_default="pending"),
    sa.Column("lease_until", TZ),
    sa.Column("released_at", TZ),
    sa.Column("unanswered_at", TZ),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_failure_reason", sa.Text),
    sa.Column("leased_by", sa.Text),
    sa.Column("sent_at", TZ),
    sa.Column("finished_at", TZ),
    sa.Column("arrival_position", sa.Integer),
    sa.Index("action_executions_pending", "queue_id", sa.text("priority DESC"), "seq",
             postgresql_where=sa.text("state = 'pending'")),
    sa.Index("action_executions_not_before", "queue_id", "not_before",
             postgresql_where=sa.text("state = 'pending' AND not_before IS NOT NULL")),
    sa.Index("action_executions_releasing", "queue_id", "lease_until", postgresql_where=sa.text("state = 'releasing'")),
    sa.Index("action_executions_released", "queue_id", sa.text("released_at DESC"),
             postgresql_where=sa.text("state = 'released'")),
    sa.Index("action_executions_unanswered", "queue_id", sa.text("unanswered_at DESC"),
             postgresql_where=sa.text("unanswered_at IS NOT NULL AND state <> 'released'")),
    sa.Index("action_executions_finished", "finished_at",
             postgresql_where=sa.text("state IN ('released', 'failed', 'expired', 'cancelled')")),
)

_LIVE = "state IN ('available', 'scheduled', 'executing', 'retryable')"

jobs = sa.Table(
    "jobs", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("args", JSONB, nullable=False, server_default="{}"),
    sa.Column("state", sa.Text, nullable=False, server_default="available"),
    sa.Column("priority", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="20"),
    sa.Column("snoozed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unique_key", sa.Text),
    sa.Column("portal_id", sa.BigInteger),
    sa.Column("scheduled_at", TZ, nullable=False),
    sa.Column("attempted_at", TZ),
    sa.Column("attempted_by", sa.Text),
    sa.Column("leased_until", TZ),
    sa.Column("finalized_at", TZ),
    sa.Column("errors", JSONB, nullable=False, server_default="[]"),
    sa.Column("inserted_at", TZ, nullable=False),
    sa.Index("jobs_unique_live", "unique_key", unique=True, postgresql_where=sa.text(f"unique_key IS NOT NULL AND {_LIVE}")),
    sa.Index("jobs_available", "priority", "scheduled_at", "id", postgresql_where=sa.text("state = 'available'")),
    sa.Index("jobs_unique_key", "unique_key", postgresql_where=sa.text("unique_key IS NOT NULL")),
    sa.Index("jobs_next_due", "scheduled_at", postgresql_where=sa.text("state IN ('available', 'scheduled', 'retryable')")),
    sa.Index("jobs_staging", "scheduled_at", postgresql_where=sa.text("state IN ('scheduled', 'retryable')")),
    sa.Index("jobs_leases", "leased_until", postgresql_where=sa.text("state = 'executing'")),
    sa.Index("jobs_finalized", "finalized_at", postgresql_where=sa.text("state IN ('completed', 'discarded', 'cancelled')")),
)

leaders = sa.Table(
    "leaders", metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("expires_at", TZ, nullable=False),
    prefixes=["UNLOGGED"],
)

nodes = sa.Table(
    "nodes", metadata,
    sa.Column("owner", sa.Text, primary_key=True),
    sa.Column("alive_until", TZ, nullable=False),
    sa.Column("started_at", TZ, nullable=False),
)

oauth_spent_states = sa.Table(
    "oauth_spent_states", metadata,
    sa.Column("nonce_sha256", BYTEA, primary_key=True),
    sa.Column("expires_at", TZ, nullable=False),
    sa.Index("oauth_spent_states_expires_at", "expires_at"),
)

schema_migrations = sa.Table(
    "schema_migrations", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("applied_at", TZ, nullable=False),
)
