-- throttled schema, as the migrations leave it (throttled/db/migrations/NNNN_*.sql, applied in
-- order by `throttled migrate` and at `throttled run` start-up; a test checks that this file
-- and the migrations give the same tables, columns, indexes and constraints). Read this one;
-- change the schema by adding a migration, then this file. SQLAlchemy Core tables in
-- throttled/db/tables.py mirror it; a test checks that too.
--
-- All times are timestamptz (UTC); "now" always comes from the daemon's clock as a
-- parameter, never from now() in SQL, so tests can drive time.
-- Every hot table carries portal_id so it can later be partitioned by hash of portal_id.

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
    rate_limited_until timestamptz,    -- legacy (before held_until): moved there at migrate
    installed_at     timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    -- HubSpot refused the portal as a whole (missing scopes, DAILY limit, an API path gone,
    -- our client credentials): no calls until held_until; the hold doubles per refusal in a
    -- row (holds) and a success or a re-install lifts it.
    held_until       timestamptz,
    hold_reason      text,
    holds            integer NOT NULL DEFAULT 0,
    -- A token refresh in progress (single-flight across daemons without holding a
    -- transaction while HubSpot answers): who claimed it, until when.
    refresh_claimed_by    text,
    refresh_claimed_until timestamptz
);

-- One row per throttled workflow step (or shared throttle).
CREATE TABLE IF NOT EXISTS queues (
    queue_id              text PRIMARY KEY,   -- queue:{portal}:{workflow}:{action}:{index}
    portal_id             bigint NOT NULL,    --   or queue:{portal}:shared:{name}
    action_id             bigint,             -- the step (NULL for a shared queue): overrides key on it
    max_throughput        integer NOT NULL CHECK (max_throughput >= 1),
    time_period           integer NOT NULL CHECK (time_period >= 1),
    time_unit             text NOT NULL
                          CHECK (time_unit IN ('seconds', 'minutes', 'hours', 'days', 'weeks')),
    mode                  text NOT NULL DEFAULT 'burst' CHECK (mode IN ('burst', 'smooth')),
    -- Optional release window: weekdays as a bitmask (bit 0 = Monday), local minutes, zone.
    release_days          smallint CHECK (release_days BETWEEN 1 AND 127),
    release_start_minute  smallint CHECK (release_start_minute BETWEEN 0 AND 1439),
    release_end_minute    smallint CHECK (release_end_minute BETWEEN 0 AND 1440),
    time_zone             text,
    -- active; paused by an operator; on_hold after repeated HubSpot failures; draining =
    -- an operator releases the backlog now, ignoring the rate (back to active when empty).
    state                 text NOT NULL DEFAULT 'active'
                          CHECK (state IN ('active', 'paused', 'on_hold', 'draining')),
    on_hold_until         timestamptz,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    holds                 integer NOT NULL DEFAULT 0,   -- holds in a row, for the hold backoff
    last_failure_reason   text,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    -- Enrollments refused because no block up to THROTTLED_BLOCK_MAX covered their
    -- forecast release (answered FAIL_CONTINUE, errorCode QUEUE_TOO_LONG), and the last time.
    refused               bigint NOT NULL DEFAULT 0,
    refused_at            timestamptz,
    -- The cleaner's last count of held records whose block ends before their forecast turn
    -- (the status views read it: O(queues)), whether it looked at all of them, the earliest
    -- block end among them, and when it counted.
    expiring              integer,
    expiring_complete     boolean,
    first_block_end       timestamptz,
    expiring_checked_at   timestamptz,
    -- A partition of a step's queue (partition_key input): the step's queue id and the key's
    -- value; NULL on an ordinary queue. Its queue_id is the parent's + '#' + a key digest.
    parent_queue_id       text,
    partition_key         text
);
CREATE INDEX IF NOT EXISTS queues_portal ON queues (portal_id);
CREATE INDEX IF NOT EXISTS queues_parent ON queues (parent_queue_id) WHERE parent_queue_id IS NOT NULL;

-- Operator overrides of a step's inputs, one per (portal, action) as in the original app.
CREATE TABLE IF NOT EXISTS throttle_configs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    portal_id        bigint NOT NULL,
    action_id        bigint NOT NULL,
    max_throughput   integer CHECK (max_throughput >= 1),
    time_period      integer CHECK (time_period >= 1),
    time_unit        text CHECK (time_unit IN ('seconds', 'minutes', 'hours', 'days', 'weeks')),
    mode             text CHECK (mode IN ('burst', 'smooth')),
    updated_at       timestamptz NOT NULL,
    CONSTRAINT throttle_configs_portal_action UNIQUE (portal_id, action_id),
    CONSTRAINT throttle_configs_rate_whole CHECK (
        (max_throughput IS NULL) = (time_period IS NULL) AND (time_period IS NULL) = (time_unit IS NULL))
);

-- Named throttles a customer manages on /app and picks in the workflow editor (optionsUrl):
-- steps naming one wait in queue:{portal}:shared:{slug} at its settings; deleted rows stay.
CREATE TABLE IF NOT EXISTS named_throttles (
    portal_id             bigint NOT NULL,
    slug                  text NOT NULL,
    display_name          text NOT NULL,
    max_throughput        integer NOT NULL CHECK (max_throughput >= 1),
    time_period           integer NOT NULL CHECK (time_period >= 1),
    time_unit             text NOT NULL
                          CHECK (time_unit IN ('seconds', 'minutes', 'hours', 'days', 'weeks')),
    mode                  text NOT NULL DEFAULT 'burst' CHECK (mode IN ('burst', 'smooth')),
    release_days          smallint CHECK (release_days BETWEEN 1 AND 127),
    release_start_minute  smallint CHECK (release_start_minute BETWEEN 0 AND 1439),
    release_end_minute    smallint CHECK (release_end_minute BETWEEN 0 AND 1440),
    time_zone             text,
    state                 text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'inactive', 'deleted')),
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    PRIMARY KEY (portal_id, slug)
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
    priority             smallint NOT NULL DEFAULT 0,   -- 0-9, higher releases first
    not_before           timestamptz,                   -- "release no earlier than"
    received_at          timestamptz NOT NULL,
    expires_at           timestamptz NOT NULL,   -- when HubSpot gives up on the block
    state                text NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'releasing', 'released', 'failed', 'expired',
                                          'cancelled')),
    lease_until          timestamptz,            -- while 'releasing': retried after this
    released_at          timestamptz,            -- when HubSpot acknowledged the completion
    -- A send of it got no answer (the daemon died, or HubSpot failed) and it went back in
    -- line: HubSpot may have completed it as late as this, so the rate window counts it here.
    unanswered_at        timestamptz,
    attempts             integer NOT NULL DEFAULT 0,
    last_failure_reason  text,
    leased_by            text,                   -- while 'releasing': the daemon holding it
    sent_at              timestamptz,            -- while 'releasing': when its last call started
    finished_at          timestamptz,            -- when it reached a final state (pruned after the retention)
    arrival_position     integer                 -- its place in line on arrival (1 = next), for the outputs
);
-- The worker's hot queries: next pending (priority, then arrival), in-flight count, recent
-- releases.
CREATE INDEX IF NOT EXISTS action_executions_pending
    ON action_executions (queue_id, priority DESC, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS action_executions_not_before
    ON action_executions (queue_id, not_before) WHERE state = 'pending' AND not_before IS NOT NULL;
CREATE INDEX IF NOT EXISTS action_executions_releasing
    ON action_executions (queue_id, lease_until) WHERE state = 'releasing';
CREATE INDEX IF NOT EXISTS action_executions_released
    ON action_executions (queue_id, released_at DESC) WHERE state = 'released';
CREATE INDEX IF NOT EXISTS action_executions_unanswered
    ON action_executions (queue_id, unanswered_at DESC)
    WHERE unanswered_at IS NOT NULL AND state <> 'released';
CREATE INDEX IF NOT EXISTS action_executions_finished
    ON action_executions (finished_at) WHERE state IN ('released', 'failed', 'expired', 'cancelled');

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
-- Claiming reads only available jobs; a staging step first makes due scheduled/retryable
-- jobs available, so this index stays small and in claim order.
CREATE INDEX IF NOT EXISTS jobs_available ON jobs (priority, scheduled_at, id)
    WHERE state = 'available';
CREATE INDEX IF NOT EXISTS jobs_leases ON jobs (leased_until) WHERE state = 'executing';
CREATE INDEX IF NOT EXISTS jobs_finalized ON jobs (finalized_at)
    WHERE state IN ('completed', 'discarded', 'cancelled');
-- Cron asks whether a time slot's job was ever inserted, whatever its state.
CREATE INDEX IF NOT EXISTS jobs_unique_key ON jobs (unique_key) WHERE unique_key IS NOT NULL;
-- The scheduler's "when is the next job due" question, whatever its priority.
CREATE INDEX IF NOT EXISTS jobs_next_due ON jobs (scheduled_at)
    WHERE state IN ('available', 'scheduled', 'retryable');
-- Staging reads only what it stages, never the due available jobs.
CREATE INDEX IF NOT EXISTS jobs_staging ON jobs (scheduled_at) WHERE state IN ('scheduled', 'retryable');

-- Leadership leases (one row per role, e.g. 'cron'): the holder renews at half the TTL; a
-- lapsed lease may be taken by anyone. Unlogged: after a crash it is simply re-elected.
CREATE UNLOGGED TABLE IF NOT EXISTS leaders (
    name        text PRIMARY KEY,
    owner       text NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- Daemons and their liveness: each renews alive_until every third of THROTTLED_LEADER_TTL and
-- sets it to now on a graceful stop. A daemon whose alive_until has passed is dead: its
-- running jobs are rescued and its leased releases go back in line without waiting for their
-- leases. An owner with no row (an older daemon) is judged by its leases alone. Unlogged: after
-- a database crash every daemon simply registers again.
CREATE UNLOGGED TABLE IF NOT EXISTS nodes (
    owner        text PRIMARY KEY,
    alive_until  timestamptz NOT NULL,
    started_at   timestamptz NOT NULL
);

-- OAuth install states already spent by a callback (a SHA-256 of the nonce): each state
-- completes at most one install. Pruned by the cleaner once past expires_at (10 minutes after
-- the state was made, when it would be refused anyway).
CREATE TABLE IF NOT EXISTS oauth_spent_states (
    nonce_sha256  bytea PRIMARY KEY,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth_spent_states_expires_at ON oauth_spent_states (expires_at);

-- The migrations applied (throttled/db/schema.py).
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL
);
