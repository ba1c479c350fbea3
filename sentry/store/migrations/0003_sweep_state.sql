-- Sweeps: a (mirror, file) pair whose ETag, Last-Modified or size changed
-- since it was last hashed is re-hashed at the next deep sweep.
ALTER TABLE sentry_file_state ADD COLUMN rehash boolean NOT NULL DEFAULT false;

-- Deep sweeps pick the pairs hashed longest ago.
CREATE INDEX sentry_file_state_mirror_hashed_idx ON sentry_file_state (mirror_id, hashed_at NULLS FIRST);
