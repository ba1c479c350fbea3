-- Writes in proportion to what changed, and each one cheaper.
--
-- No query reads sentry_file_state by hashed_at (a deep sweep reads a
-- mirror's states by the primary key and orders them itself), and the
-- index on it made every change of a pair's state a non-HOT update, one
-- insertion into each of the table's indexes. Without it, a change of
-- result, validators or times touches no indexed column and is a HOT
-- update in the page's free space (fillfactor 70, migration 0009).
DROP INDEX sentry_file_state_mirror_hashed_idx;

-- sentry_checks is appended in time order, run after run, and read by time
-- or run only by retention (old rows, in bounded batches) and by the
-- questions about one run: block-range (BRIN) indexes serve both at a
-- fraction of a b-tree's cost per row written. Reports read a mirror's
-- checks through sentry_checks_mirror_time_idx and _failures_idx, and a
-- release's through _release_verified_idx.
DROP INDEX sentry_checks_time_idx;
CREATE INDEX sentry_checks_time_idx ON sentry_checks USING brin (checked_at);
DROP INDEX sentry_checks_run_idx;
CREATE INDEX sentry_checks_run_idx ON sentry_checks USING brin (run_id);

-- The reference from every check to its run cost a lookup of the run per
-- row written, half of what copying a batch of checks costs. Nothing
-- deletes a run but retention, which deletes old checks first, by time
-- (a check is never younger than its run's end): the reference is kept by
-- the writers (a check is written under its run's work fence) rather than
-- by a trigger.
ALTER TABLE sentry_checks DROP CONSTRAINT sentry_checks_run_id_fkey;
