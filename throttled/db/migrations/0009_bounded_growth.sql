-- 0009: bounded growth. Finished executions carry when they finished, so the cleaner can
-- prune them after THROTTLED_EXECUTION_RETENTION; each queue carries the cleaner's last
-- count of held records that will expire before their turn, so the status views cost
-- O(queues), not O(rows).
ALTER TABLE action_executions ADD COLUMN IF NOT EXISTS finished_at timestamptz;
UPDATE action_executions SET finished_at = coalesce(released_at, expires_at)
    WHERE finished_at IS NULL AND state IN ('released', 'failed', 'expired', 'cancelled');
CREATE INDEX IF NOT EXISTS action_executions_finished
    ON action_executions (finished_at) WHERE state IN ('released', 'failed', 'expired', 'cancelled');
ALTER TABLE queues ADD COLUMN IF NOT EXISTS expiring integer;
ALTER TABLE queues ADD COLUMN IF NOT EXISTS expiring_complete boolean;
ALTER TABLE queues ADD COLUMN IF NOT EXISTS first_block_end timestamptz;
ALTER TABLE queues ADD COLUMN IF NOT EXISTS expiring_checked_at timestamptz;
