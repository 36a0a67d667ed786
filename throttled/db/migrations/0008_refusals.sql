-- 0008: per queue, enrollments refused because no block up to THROTTLED_BLOCK_MAX covers
-- their forecast release (the customer sees each in the workflow history; the status
-- pages show the count and the last time).
ALTER TABLE queues ADD COLUMN IF NOT EXISTS refused bigint NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN IF NOT EXISTS refused_at timestamptz;
