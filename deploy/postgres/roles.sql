-- Least privilege for throttled: the schema's owner runs `throttled migrate`; the service
-- (`throttled run`) connects as an application role that may only read and write rows.
-- Replace the names (throttled, throttled_owner, throttled_app) and add passwords as your
-- setup needs. tests/e2e/test_least_privilege.py runs part 2 of this file as written.

-- Part 1, as a superuser (or your provider's admin role), once:
--   CREATE ROLE throttled_owner LOGIN;
--   CREATE ROLE throttled_app LOGIN;
--   CREATE DATABASE throttled OWNER throttled_owner;
--   \c throttled
--   ALTER SCHEMA public OWNER TO throttled_owner;
-- then, as throttled_owner: `THROTTLED_DATABASE_URL=postgresql://throttled_owner@…/throttled throttled migrate`

-- Part 2, as throttled_owner, after the first `throttled migrate`:
GRANT CONNECT ON DATABASE throttled TO throttled_app;
GRANT USAGE ON SCHEMA public TO throttled_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO throttled_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO throttled_app;
-- Tables and sequences later migrations create (run by throttled_owner) get the same grants:
ALTER DEFAULT PRIVILEGES FOR ROLE throttled_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO throttled_app;
ALTER DEFAULT PRIVILEGES FOR ROLE throttled_owner IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO throttled_app;
