-- Several sentry processes share one database (and one sweep's work).

-- Every sentry process that works: `sentry run` daemons, and the
-- `sentry prime` / `sentry sweep` commands while they run. last_seen is a
-- heartbeat; an instance not seen for a lease is gone.
CREATE TABLE sentry_instances (
    id text PRIMARY KEY,
    vantage text NOT NULL,
    role text NOT NULL CHECK (role IN ('daemon', 'command')),
    host text NOT NULL,
    pid int NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz
);
CREATE INDEX sentry_instances_seen_idx ON sentry_instances (last_seen DESC);

-- The instance that created a run; params is what every worker needs to
-- do its part (releases, deep or light, the release of a prime); judge_by
-- and judge_until lease the run's last step (guard, quorum, marks).
ALTER TABLE sentry_runs
    ADD COLUMN instance text,
    ADD COLUMN params jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN judge_by text,
    ADD COLUMN judge_until timestamptz;
CREATE INDEX sentry_runs_running_idx ON sentry_runs (id) WHERE outcome = 'running';

-- A run's work, one row per mirror, claimed with FOR UPDATE SKIP LOCKED and
-- held under a lease that its instance renews. One instance works a mirror
-- at a time, so per-mirror concurrency caps hold across instances.
--   vantages: the vantage points that were working when the run began;
--   needs:    those of them that have still to check the mirror's reachability;
--   not_from: those the mirror was unreachable from (its files are left to
--             another vantage);
--   files_done/result/done_by: the mirror's files were checked (sweep) or
--             primed (prime), by done_by, with this outcome;
--   verdicts: per vantage, what its reachability check said.
CREATE TABLE sentry_work (
    run_id bigint NOT NULL REFERENCES sentry_runs ON DELETE CASCADE,
    mirror_id int NOT NULL,
    seq int NOT NULL,
    vantages text[] NOT NULL DEFAULT '{}',
    needs text[] NOT NULL DEFAULT '{}',
    not_from text[] NOT NULL DEFAULT '{}',
    files_done boolean NOT NULL DEFAULT false,
    done boolean NOT NULL DEFAULT false,
    claimed_by text,
    lease_until timestamptz,
    claims int NOT NULL DEFAULT 0,
    done_by text,
    verdicts jsonb NOT NULL DEFAULT '{}',
    result jsonb,
    PRIMARY KEY (run_id, mirror_id)
);
CREATE INDEX sentry_work_open_idx ON sentry_work (run_id, seq) WHERE NOT done;

-- Which vantage points a mirror failed from at its last sweep, and which
-- checked it: a mirror failing from fewer than the quorum is up, and
-- reported as partially unreachable. run_id is the run that wrote the row:
-- a sweep judged again (its first judge stopped half-way) does not count
-- a mirror twice.
ALTER TABLE sentry_mirror_state
    ADD COLUMN failing_from text[] NOT NULL DEFAULT '{}',
    ADD COLUMN checked_from text[] NOT NULL DEFAULT '{}',
    ADD COLUMN run_id bigint;
