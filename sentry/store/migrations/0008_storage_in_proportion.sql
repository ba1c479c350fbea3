-- Storage in proportion to change: a check that finds what was known
-- already is only counted, by the hour; rows are written for what changed.

-- last_at: the newest check counted in the row, so that "last checked"
-- needs no row per check.
ALTER TABLE sentry_check_hourly ADD COLUMN last_at timestamptz;
UPDATE sentry_check_hourly h SET last_at = least(h.hour + interval '1 hour' - interval '1 microsecond', now());

-- A run's final word on each mirror (the judge's), as one document on the
-- run instead of a write per work row: mirror id → result.
ALTER TABLE sentry_runs ADD COLUMN results jsonb;

-- Polite sweeps: a mirror's own cap on requests per second (NULL: the
-- configured checks.per_mirror_rate), and the rsync URL of its release
-- tree, listed in one connection per sweep instead of a HEAD per file.
ALTER TABLE sentry_mirror_settings
    ADD COLUMN max_rate real CHECK (max_rate IS NULL OR max_rate > 0),
    ADD COLUMN rsync_url text CHECK (rsync_url IS NULL OR rsync_url LIKE 'rsync://%');

-- What an rsync listing last said of a file: a changed size or time is
-- checked over HTTP.
ALTER TABLE sentry_file_state ADD COLUMN listed text NOT NULL DEFAULT '';

-- Retention prunes old rows in bounded batches, oldest first.
CREATE INDEX IF NOT EXISTS sentry_runs_finished_idx ON sentry_runs (finished_at) WHERE finished_at IS NOT NULL;
