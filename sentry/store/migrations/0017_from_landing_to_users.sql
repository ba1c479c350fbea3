-- From landing to users: priming starts before the master's copy of the
-- whole release is read, a release's capacity is measured against the
-- mirrors the redirector can offer for its products, and an alias goes
-- live when the release is ready.

-- The master's copy of a release, checked file by file against its
-- manifest while the mirrors are already being primed: 'pending' until
-- every file was read (sweeps leave such a release alone: it is not
-- known good yet), 'ok' once all were right, 'failed' when one was not
-- (master_detail says which and how; nothing was marked for the
-- release). Releases recorded before this migration were checked before
-- they were recorded at all: 'ok'. A release recorded from now on starts
-- 'pending'.
ALTER TABLE sentry_releases
    ADD COLUMN master_state text NOT NULL DEFAULT 'ok' CHECK (master_state IN ('pending', 'ok', 'failed')),
    ADD COLUMN master_detail text NOT NULL DEFAULT '';
ALTER TABLE sentry_releases ALTER COLUMN master_state SET DEFAULT 'pending';

-- Every move of an alias (mirror_aliases.related_product) sentry made:
-- when, from what to what, for which release, why (the uptake it saw, or
-- an operator's --force), and who (a prime's or a sweep's judgement, a
-- run id; or `sentry promote`). One row per move; never pruned.
CREATE TABLE sentry_alias_moves (
    id bigserial PRIMARY KEY,
    alias text NOT NULL,
    from_product text,
    to_product text NOT NULL,
    release text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    by text NOT NULL,
    run_id bigint,
    forced boolean NOT NULL DEFAULT false,
    min_uptake double precision,
    reason text NOT NULL
);
CREATE INDEX sentry_alias_moves_alias_idx ON sentry_alias_moves (alias, at DESC);
