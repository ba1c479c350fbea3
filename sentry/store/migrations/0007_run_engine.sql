-- The run engine (package engine): fenced leases, mirrors held across runs,
-- one running prime per release, judging that is retried and bounded.

-- key: at most one running run per key ("prime 1.5": one prime of a
-- release at a time); a second start joins or is refused.
-- ready: the run's work rows exist (a run is recorded first, so that the
-- release hook can answer with its id, and planned after).
-- judge_token counts the claims of the run's last step: the fence of the
-- judge's writes. judge_after, judge_error, judge_attempts: a judge that
-- failed is retried, by any sentry, after a backoff; one that keeps
-- failing ends the run as failed.
ALTER TABLE sentry_runs
    ADD COLUMN key text,
    ADD COLUMN ready boolean NOT NULL DEFAULT true,
    ADD COLUMN judge_token int NOT NULL DEFAULT 0,
    ADD COLUMN judge_after timestamptz,
    ADD COLUMN judge_error text NOT NULL DEFAULT '',
    ADD COLUMN judge_attempts int NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX sentry_runs_running_key_idx ON sentry_runs (key) WHERE outcome = 'running' AND key IS NOT NULL;

-- done_at: when the row was done (a run's judging is bounded from its
-- last row). claims is the fence of the holder's writes: it changes on
-- every claim.
ALTER TABLE sentry_work ADD COLUMN done_at timestamptz;

-- A mirror is held by one work row at a time, whatever run the row is of:
-- claiming finds the mirrors held now.
CREATE INDEX sentry_work_held_idx ON sentry_work (mirror_id) WHERE NOT done AND claimed_by IS NOT NULL;
