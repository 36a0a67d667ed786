-- 0002: claims read only available jobs (a staging step makes due scheduled/retryable jobs
-- available), cron asks whether a slot's job was ever inserted, leadership leases.
DROP INDEX IF EXISTS jobs_due;
CREATE INDEX IF NOT EXISTS jobs_available ON jobs (priority, scheduled_at, id)
    WHERE state = 'available';
CREATE INDEX IF NOT EXISTS jobs_unique_key ON jobs (unique_key) WHERE unique_key IS NOT NULL;
CREATE UNLOGGED TABLE IF NOT EXISTS leaders (
    name        text PRIMARY KEY,
    owner       text NOT NULL,
    expires_at  timestamptz NOT NULL
);
