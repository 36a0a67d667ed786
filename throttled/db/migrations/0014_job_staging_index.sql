-- 0014: staging (scheduled/retryable jobs whose time has come become available) reads an
-- index of its own. Through jobs_next_due, which also holds the available jobs, each claim
-- walked every due available job before reaching the ones to stage (15 ms per claim at
-- 10,000 due, issue 17).
CREATE INDEX IF NOT EXISTS jobs_staging ON jobs (scheduled_at) WHERE state IN ('scheduled', 'retryable');
