package sentry_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// oldRecords adds, beside what a prime and a sweep wrote, records older
// than the default retention: a finished run of 40 days ago with a check,
// hourly counts of 40 and 500 days ago, an instance gone for 40 days.
func oldRecords(t *testing.T, b *bundle, mirror int) {
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
		if _, err := b.st.Pool().Exec(context.Background(), sql, mirror); err != nil {
			t.Fatal(err)
		}
	}
}

// counts of what retention may and may not touch.
type recordCounts struct {
	Checks, Runs, Hours, Instances, Log, Changes, FileStates, Marks int
}

func countRecords(t *testing.T, b *bundle) recordCounts {
	t.Helper()
	var c recordCounts
	if err := b.st.Pool().QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM sentry_checks), (SELECT count(*) FROM sentry_runs), (SELECT count(*) FROM sentry_check_hourly),
		(SELECT count(*) FROM sentry_instances), (SELECT count(*) FROM sentry_log), (SELECT count(*) FROM sentry_state_changes),
		(SELECT count(*) FROM sentry_file_state), (SELECT count(*) FROM mirror_location_mirror_map)`).
		Scan(&c.Checks, &c.Runs, &c.Hours, &c.Instances, &c.Log, &c.Changes, &c.FileStates, &c.Marks); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRetention: records older than retention.checks (checks, finished
// runs, instances gone) and hourly counts older than retention.rollup are
// pruned; recent ones stay, and so do the bouncer tables, the state
// history and the file states; reports within the window are unchanged.
func TestRetention(t *testing.T) {
	d, b := setup(t)
	_, id := b.static(t, "good")
	down, _ := b.static(t, "down")
	primeRelease(t, d)
	failing(down).Store(true)
	d.Config.State.DownAfter = 1
	sweepNow(t, d, false)
	before := countRecords(t, b)
	if before.Changes == 0 || before.Log == 0 {
		t.Fatalf("the fixture has no state change or log rows: %+v", before)
	}
	win := report.Window{Since: time.Now().Add(-24 * time.Hour), Until: time.Now().Add(time.Minute)}
	reportNow := func() string {
		t.Helper()
		rep, err := report.New(b.st.Pool(), nil).Mirrors(context.Background(), win)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(rep)
		return string(out)
	}
	want := reportNow()
	oldRecords(t, b, id)
	p, err := b.st.Prune(context.Background(), store.Retention{Checks: d.Config.Retention.Checks.D(), Rollup: d.Config.Retention.Rollup.D()})
	if err != nil {
		t.Fatal(err)
	}
	if p != (store.Pruned{Checks: 1, Runs: 1, Hours: 1, Instances: 1}) {
		t.Errorf("pruned %+v, want the old check, run, instance and the 500-day hourly count", p)
	}
	after := countRecords(t, b)
	before.Hours++ // the 40-day count stays: retention.rollup is 400 days
	if after != before {
		t.Errorf("after pruning %+v, want what was there before the old records %+v", after, before)
	}
	if got := reportNow(); got != want {
		t.Errorf("the report within the window changed:\n%s\nwant\n%s", got, want)
	}
	if p, err := b.st.Prune(context.Background(), store.Retention{Checks: time.Hour, Rollup: time.Hour}); err != nil ||
		p != (store.Pruned{Hours: 1}) {
		t.Errorf("second prune: %+v %v; want only the 40-day hourly count", p, err)
	}
}

// TestDaemonPrunesOldRecords: `sentry run` prunes at start.
func TestDaemonPrunesOldRecords(t *testing.T) {
	d, b := setup(t)
	_, id := b.static(t, "good")
	primeRelease(t, d)
	oldRecords(t, b, id)
	daemon(t, d, sentry.DaemonOptions{})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var old int
		if err := b.st.Pool().QueryRow(context.Background(), `SELECT (SELECT count(*) FROM sentry_checks WHERE path = 'old')
			+ (SELECT count(*) FROM sentry_instances WHERE id = 'gone') + (SELECT count(*) FROM sentry_runs WHERE vantage = 'old')`).
			Scan(&old); err != nil {
			t.Fatal(err)
		}
		if old == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not prune the old records (%d left)", old)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := countRecords(t, b); c.Checks == 0 || c.Log == 0 {
		t.Errorf("the daemon pruned recent records: %+v", c)
	}
}
