-- 0001: the schema of the first release (the walking skeleton, commit f9f561e), verbatim.
-- Every later change is a migration of its own; schema.sql shows the result.


-- One row per HubSpot account that installed the app (portal id = hub id).
CREATE TABLE IF NOT EXISTS portals (
    portal_id        bigint PRIMARY KEY,
    status           text NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'suspended', 'revoked')),
    access_token     bytea,            -- AES-256-GCM, see throttled/crypto/tokens.py
    refresh_token    bytea,
    expires_at       timestamptz,      -- when the access token expires
    scopes           text[] NOT NULL DEFAULT '{}',
    key_id           text,             -- id of the key the tokens are encrypted with
    installed_at     timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

-- One row per throttled workflow step (or shared throttle).
CREATE TABLE IF NOT EXISTS queues (
    queue_id              text PRIMARY KEY,   -- queue:{portal}:{workflow}:{action}:{index}
    portal_id             bigint NOT NULL,
    max_throughput        integer NOT NULL CHECK (max_throughput >= 1),
    time_period           integer NOT NULL CHECK (time_period >= 1),
    time_unit             text NOT NULL
                          CHECK (time_unit IN ('seconds', 'minutes', 'hours', 'days', 'weeks')),
    mode                  text NOT NULL DEFAULT 'burst' CHECK (mode IN ('burst', 'smooth')),
    state                 text NOT NULL DEFAULT 'active'
                          CHECK (state IN ('active', 'paused', 'on_hold')),
    on_hold_until         timestamptz,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    last_failure_reason   text,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS queues_portal ON queues (portal_id);

-- Operator overrides of a step's inputs, one per (portal, action) as in the original app.
CREATE TABLE IF NOT EXISTS throttle_configs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    portal_id        bigint NOT NULL,
    action_id        bigint NOT NULL,
    max_throughput   integer CHECK (max_throughput >= 1),
    time_period      integer CHECK (time_period >= 1),
    time_unit        text CHECK (time_unit IN ('seconds', 'minutes', 'hours', 'days', 'weeks')),
    updated_at       timestamptz NOT NULL,
    CONSTRAINT throttle_configs_portal_action UNIQUE (portal_id, action_id)
);

-- One row per enrolled record held at a step. callback_id is unique: a webhook HubSpot
-- retries is stored once. seq gives arrival order (received_at ties inside one commit).
CREATE TABLE IF NOT EXISTS action_executions (
    callback_id          text PRIMARY KEY,
    seq                  bigint GENERATED ALWAYS AS IDENTITY,
    portal_id            bigint NOT NULL,
    queue_id             text NOT NULL,
    object_type          text,
    object_id            text,
    input_fields         jsonb NOT NULL DEFAULT '{}',
    received_at          timestamptz NOT NULL,
    expires_at           timestamptz NOT NULL,   -- when HubSpot gives up on the block
    state                text NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'releasing', 'released', 'failed', 'expired')),
    lease_until          timestamptz,            -- while 'releasing': retried after this
    released_at          timestamptz,            -- when HubSpot acknowledged the completion
    attempts             integer NOT NULL DEFAULT 0,
    last_failure_reason  text
);
-- The worker's hot queries: next pending in arrival order, in-flight count, recent releases.
CREATE INDEX IF NOT EXISTS action_executions_pending
    ON action_executions (queue_id, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS action_executions_releasing
    ON action_executions (queue_id, lease_until) WHERE state = 'releasing';
CREATE INDEX IF NOT EXISTS action_executions_released
    ON action_executions (queue_id, released_at DESC) WHERE state = 'released';

-- The hand-rolled job table (Oban/River style). Lower priority numbers run first.
CREATE TABLE IF NOT EXISTS jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL,
    args             jsonb NOT NULL DEFAULT '{}',
    state            text NOT NULL DEFAULT 'available'
                     CHECK (state IN ('available', 'scheduled', 'executing', 'retryable',
                                      'completed', 'discarded', 'cancelled')),
    priority         smallint NOT NULL DEFAULT 0,
    attempt          integer NOT NULL DEFAULT 0,    -- attempts spent (a snooze spends none)
    max_attempts     integer NOT NULL DEFAULT 20,
    snoozed          integer NOT NULL DEFAULT 0,
    unique_key       text,
    portal_id        bigint,
    scheduled_at     timestamptz NOT NULL,
    attempted_at     timestamptz,
    attempted_by     text,                          -- node id + per-process random id
    leased_until     timestamptz,
    finalized_at     timestamptz,
    errors           jsonb NOT NULL DEFAULT '[]',   -- [{attempt, at, error}]
    inserted_at      timestamptz NOT NULL
);
-- One live job per unique key: "one job per queue" is enforced here, not by check-then-insert.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_unique_live ON jobs (unique_key)
    WHERE unique_key IS NOT NULL
      AND state IN ('available', 'scheduled', 'executing', 'retryable');
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (priority, scheduled_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');
CREATE INDEX IF NOT EXISTS jobs_leases ON jobs (leased_until) WHERE state = 'executing';
CREATE INDEX IF NOT EXISTS jobs_finalized ON jobs (finalized_at)
    WHERE state IN ('completed', 'discarded', 'cancelled');
-- The scheduler's "when is the next job due" question, whatever its priority.
CREATE INDEX IF NOT EXISTS jobs_next_due ON jobs (scheduled_at)
    WHERE state IN ('available', 'scheduled', 'retryable');
