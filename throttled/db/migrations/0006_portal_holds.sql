-- 0006: portals HubSpot refuses as a whole are held (with a reason and a backoff); token
-- refreshes are claimed on the row instead of holding its lock while HubSpot answers.
ALTER TABLE portals ADD COLUMN IF NOT EXISTS held_until timestamptz;
ALTER TABLE portals ADD COLUMN IF NOT EXISTS hold_reason text;
ALTER TABLE portals ADD COLUMN IF NOT EXISTS holds integer NOT NULL DEFAULT 0;
ALTER TABLE portals ADD COLUMN IF NOT EXISTS refresh_claimed_by text;
ALTER TABLE portals ADD COLUMN IF NOT EXISTS refresh_claimed_until timestamptz;
UPDATE portals SET held_until = rate_limited_until, rate_limited_until = NULL,
                   hold_reason = coalesce(hold_reason, 'HubSpot''s daily API limit is reached')
 WHERE rate_limited_until IS NOT NULL;
