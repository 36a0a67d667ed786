-- 0003: the throttle's optional inputs (release window, priority, release_after, mode
-- overrides), draining and cancelled states, the step a queue belongs to, hold backoff.
ALTER TABLE queues ADD COLUMN IF NOT EXISTS action_id bigint;
ALTER TABLE queues ADD COLUMN IF NOT EXISTS release_days smallint CHECK (release_days BETWEEN 1 AND 127);
ALTER TABLE queues ADD COLUMN IF NOT EXISTS release_start_minute smallint
    CHECK (release_start_minute BETWEEN 0 AND 1439);
ALTER TABLE queues ADD COLUMN IF NOT EXISTS release_end_minute smallint
    CHECK (release_end_minute BETWEEN 0 AND 1440);
ALTER TABLE queues ADD COLUMN IF NOT EXISTS time_zone text;
ALTER TABLE queues ADD COLUMN IF NOT EXISTS holds integer NOT NULL DEFAULT 0;
ALTER TABLE queues DROP CONSTRAINT IF EXISTS queues_state_check;
ALTER TABLE queues ADD CONSTRAINT queues_state_check
    CHECK (state IN ('active', 'paused', 'on_hold', 'draining'));

ALTER TABLE throttle_configs ADD COLUMN IF NOT EXISTS mode text CHECK (mode IN ('burst', 'smooth'));
ALTER TABLE throttle_configs DROP CONSTRAINT IF EXISTS throttle_configs_rate_whole;
ALTER TABLE throttle_configs ADD CONSTRAINT throttle_configs_rate_whole CHECK (
    (max_throughput IS NULL) = (time_period IS NULL) AND (time_period IS NULL) = (time_unit IS NULL));

ALTER TABLE action_executions ADD COLUMN IF NOT EXISTS priority smallint NOT NULL DEFAULT 0;
ALTER TABLE action_executions ADD COLUMN IF NOT EXISTS not_before timestamptz;
ALTER TABLE action_executions DROP CONSTRAINT IF EXISTS action_executions_state_check;
ALTER TABLE action_executions ADD CONSTRAINT action_executions_state_check
    CHECK (state IN ('pending', 'releasing', 'released', 'failed', 'expired', 'cancelled'));
DROP INDEX IF EXISTS action_executions_pending;  -- was (queue_id, seq): priority comes first now
CREATE INDEX action_executions_pending
    ON action_executions (queue_id, priority DESC, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS action_executions_not_before
    ON action_executions (queue_id, not_before) WHERE state = 'pending' AND not_before IS NOT NULL;
