-- Sweeps: a (mirror, file) pair whose ETag, Last-Modified or size changed
-- since it was last hashed is re-hashed at the next deep sweep.
ALTER TABLE sentry_file_state ADD COLUMN rehash boolean NOT NULL DEFAULT false;

-- Deep sweeps pick the pairs hashed longest ago.
CREATE INDEX sentry_file_state_mirror_hashed_idx ON sentry_file_state (mirror_id, hashed_at NULLS FIRST);

-- A scheduled sweep's slot (its scheduled time): several `sentry run`
-- processes on one database run each slot once, the first to claim it.
ALTER TABLE sentry_runs ADD COLUMN slot timestamptz;
CREATE UNIQUE INDEX sentry_runs_slot_idx ON sentry_runs (kind, slot) WHERE slot IS NOT NULL;
