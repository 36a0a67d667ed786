-- 0005: a send whose answer was lost keeps counting in the rate window.
ALTER TABLE action_executions ADD COLUMN IF NOT EXISTS unanswered_at timestamptz;
CREATE INDEX IF NOT EXISTS action_executions_unanswered
    ON action_executions (queue_id, unanswered_at DESC)
    WHERE unanswered_at IS NOT NULL AND state <> 'released';
