-- 0010: OAuth install states spent by a callback, so each completes at most one install.
-- Kept until the state would have expired anyway (10 minutes), then pruned by the cleaner.
-- Only a SHA-256 of the state's nonce is stored.
CREATE TABLE IF NOT EXISTS oauth_spent_states (
    nonce_sha256  bytea PRIMARY KEY,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth_spent_states_expires_at ON oauth_spent_states (expires_at);
