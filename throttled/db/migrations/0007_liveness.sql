-- 0007: daemons' liveness, and which daemon holds a release and when its last call started,
-- so a dead daemon's releases come back without waiting for their leases.
ALTER TABLE action_executions ADD COLUMN IF NOT EXISTS leased_by text;
ALTER TABLE action_executions ADD COLUMN IF NOT EXISTS sent_at timestamptz;
CREATE UNLOGGED TABLE IF NOT EXISTS nodes (
    owner        text PRIMARY KEY,
    alive_until  timestamptz NOT NULL,
    started_at   timestamptz NOT NULL
);
