-- 0011: where each record stood in its queue when it arrived (1 = next to go), for the
-- completion's position_on_arrival output (hubspot/outputs.py). NULL for records stored
-- before this migration: their completions leave the output out.
ALTER TABLE action_executions ADD COLUMN IF NOT EXISTS arrival_position integer;
