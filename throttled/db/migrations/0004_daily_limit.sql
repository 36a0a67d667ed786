-- 0004: HubSpot's DAILY limit holds a portal until the next day (moved to held_until by 0006).
ALTER TABLE portals ADD COLUMN IF NOT EXISTS rate_limited_until timestamptz;
