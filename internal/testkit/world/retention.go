package world

import (
	"testing"
)

// AddOldRecords adds, beside what the world's runs wrote, records older
// than the default retention: a finished run of 40 days ago with a check
// of mirror, hourly counts of 40 and 500 days ago, an instance gone for 40
// days.
func (w *World) AddOldRecords(t testing.TB, mirror int) {
	t.Helper()
	for _, sql := range []string{`
		WITH r AS (INSERT INTO sentry_runs (kind, vantage, host, pid, started_at, finished_at, outcome)
		           VALUES ('sweep', 'old', 'h', 1, now() - interval '40 days', now() - interval '40 days', 'completed') RETURNING id)
		INSERT INTO sentry_checks (run_id, mirror_id, path, checked_at, vantage, method, result)
		SELECT id, $1, 'old', now() - interval '40 days', 'old', 'HEAD', 'not_found' FROM r`, `
		INSERT INTO sentry_check_hourly (mirror_id, hour, vantage, result, n, last_at) VALUES
			($1, date_trunc('hour', now() - interval '40 days'), 'old', 'ok', 7, now() - interval '40 days'),
			($1, date_trunc('hour', now() - interval '500 days'), 'old', 'ok', 9, now() - interval '500 days')`, `
		INSERT INTO sentry_instances (id, vantage, role, host, pid, last_seen)
		SELECT 'gone', 'old', 'daemon', 'h', 1, now() - interval '40 days' WHERE $1::int IS NOT NULL`,
	} {
		w.Exec(t, sql, mirror)
	}
}

// RecordCounts are the rows of what retention may and may not touch.
type RecordCounts struct {
	Checks, Runs, Hours, Instances, Log, Changes, FileStates, Marks, Notices, Digests int
}

// CountRecords counts what retention may and may not touch.
func (w *World) CountRecords(t testing.TB) RecordCounts {
	t.Helper()
	var c RecordCounts
	w.QueryRow(t, `SELECT
		(SELECT count(*) FROM sentry_checks), (SELECT count(*) FROM sentry_runs), (SELECT count(*) FROM sentry_check_hourly),
		(SELECT count(*) FROM sentry_instances), (SELECT count(*) FROM sentry_log), (SELECT count(*) FROM sentry_state_changes),
		(SELECT count(*) FROM sentry_file_state), (SELECT count(*) FROM mirror_location_mirror_map),
		(SELECT count(*) FROM sentry_notices), (SELECT count(*) FROM sentry_block_digests)`, nil,
		&c.Checks, &c.Runs, &c.Hours, &c.Instances, &c.Log, &c.Changes, &c.FileStates, &c.Marks, &c.Notices, &c.Digests)
	return c
}
