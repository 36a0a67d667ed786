-- 0012: named throttles a customer manages on their page (/app) and picks from the workflow
-- editor's dropdown (the action's optionsUrl). A step naming one (shared_queue = slug) waits
-- in the shared queue queue:{portal}:shared:{slug} at the named throttle's settings, which
-- win over the step's inputs. Deleting keeps the row (state 'deleted') so a step still
-- naming it gets a clear answer rather than an ad-hoc throttle of the same name.
-- Keyed by portal first, like every table meant to be distributed by portal.
CREATE TABLE IF NOT EXISTS named_throttles (
    portal_id             bigint NOT NULL,
    slug                  text NOT NULL,
    display_name          text NOT NULL,
    max_throughput        integer NOT NULL CHECK (max_throughput >= 1),
    time_period           integer NOT NULL CHECK (time_period >= 1),
    time_unit             text NOT NULL
                          CHECK (time_unit IN ('seconds', 'minutes', 'hours', 'days', 'weeks')),
    mode                  text NOT NULL DEFAULT 'burst' CHECK (mode IN ('burst', 'smooth')),
    release_days          smallint CHECK (release_days BETWEEN 1 AND 127),
    release_start_minute  smallint CHECK (release_start_minute BETWEEN 0 AND 1439),
    release_end_minute    smallint CHECK (release_end_minute BETWEEN 0 AND 1440),
    time_zone             text,
    state                 text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'inactive', 'deleted')),
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    PRIMARY KEY (portal_id, slug)
);
