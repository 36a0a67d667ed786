-- 0013: partitioned limits ("20 per owner per day"). A partition of a step's (or shared)
-- queue is a queue row of its own, queue_id = parent's id + '#' + 16 hex digits of the key's
-- SHA-256 (throttle/queue_ids.py): its window, job and lock are its own. parent_queue_id
-- groups them under the step's queue for operators and customers; partition_key keeps the
-- value (e.g. an owner id) to show. Both NULL on an ordinary queue.
ALTER TABLE queues ADD COLUMN IF NOT EXISTS parent_queue_id text;
ALTER TABLE queues ADD COLUMN IF NOT EXISTS partition_key text;
CREATE INDEX IF NOT EXISTS queues_parent ON queues (parent_queue_id) WHERE parent_queue_id IS NOT NULL;
