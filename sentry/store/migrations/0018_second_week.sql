-- An operator's second week (issue 28).

-- retention.sentry_log prunes the bouncer's log rows older than a
-- duration (default: kept, as bouncer's viewers expect). Rows are
-- appended in time order, so a block-range index finds the old ones
-- cheaply, in the order they lie on disk, at a few pages of index for
-- millions of rows. Nothing of the table itself changes.
CREATE INDEX IF NOT EXISTS sentry_log_date_idx ON sentry_log USING brin (log_date);

-- Families per file: a file failing over one address family while
-- another family of the same mirror serves it right (a second server
-- behind the AAAA record lacks it) records that family here ('' for a
-- failure over every family, or none). The state's validators, size and
-- verification times stay those of the family that serves it right.
ALTER TABLE sentry_file_state ADD COLUMN failed_over text NOT NULL DEFAULT ''
    CHECK (failed_over IN ('', 'ipv4', 'ipv6'));
CREATE INDEX sentry_file_state_failed_over_idx ON sentry_file_state (mirror_id) WHERE failed_over <> '';
