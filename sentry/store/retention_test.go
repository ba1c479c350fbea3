package store_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestRetention: records older than retention.checks (checks, finished
// runs, instances gone) and hourly counts older than retention.rollup are
// pruned; recent ones stay, and so do the bouncer tables, the state
// history and the file states; reports within the window are unchanged.
func TestRetention(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	_, id := w.Static(t, "good")
	down, _ := w.Static(t, "down")
	w.Prime(t)
	world.Failing(down).Store(true)
	d.Config.State.DownAfter = 1
	w.Sweep(t, false)
	before := w.CountRecords(t)
	if before.Changes == 0 || before.Log == 0 {
		t.Fatalf("the fixture has no state change or log rows: %+v", before)
	}
	win := report.Window{Since: time.Now().Add(-24 * time.Hour), Until: time.Now().Add(time.Minute)}
	reportNow := func() string {
		t.Helper()
		rep, err := report.New(w.Pool(), nil).Mirrors(context.Background(), win)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(rep)
		return string(out)
	}
	want := reportNow()
	w.AddOldRecords(t, id)
	p, err := w.Store.Prune(context.Background(), store.Retention{Checks: d.Config.Retention.Checks.D(), Rollup: d.Config.Retention.Rollup.D()})
	if err != nil {
		t.Fatal(err)
	}
	if p != (store.Pruned{Checks: 1, Runs: 1, Hours: 1, Instances: 1}) {
		t.Errorf("pruned %+v, want the old check, run, instance and the 500-day hourly count", p)
	}
	after := w.CountRecords(t)
	before.Hours++ // the 40-day count stays: retention.rollup is 400 days
	if after != before {
		t.Errorf("after pruning %+v, want what was there before the old records %+v", after, before)
	}
	if got := reportNow(); got != want {
		t.Errorf("the report within the window changed:\n%s\nwant\n%s", got, want)
	}
	if p, err := w.Store.Prune(context.Background(), store.Retention{Checks: time.Hour, Rollup: time.Hour}); err != nil ||
		p != (store.Pruned{Hours: 1}) {
		t.Errorf("second prune: %+v %v; want only the 40-day hourly count", p, err)
	}
}

// TestRetentionOfLogNoticesAndDigests: the bouncer's sentry_log rows are
// kept by default and pruned past retention.sentry_log; mail notices are
// pruned with the checks (not within the two days a change is mailed in,
// nor one being sent); block digests go once no live release needs them
// — a release is live while one of its bouncer products is active, or
// it was recorded or primed within retention.checks — and digests just
// computed (a prime reading the master) stay.
func TestRetentionOfLogNoticesAndDigests(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	_, id := w.Static(t, "good")
	w.Prime(t)
	ctx := context.Background()
	count := func(sql string) int {
		t.Helper()
		var n int
		w.QueryRow(t, sql, nil, &n)
		return n
	}
	live := count(`SELECT count(*) FROM sentry_block_digests`)
	if live == 0 || count(`SELECT count(*) FROM sentry_log`) != 1 {
		t.Fatalf("the prime left %d digests and %d log rows", live, count(`SELECT count(*) FROM sentry_log`))
	}
	w.Exec(t, `INSERT INTO sentry_log (log_date, check_time, mirror_id, mirror_active, mirror_rating, reason) VALUES
		(now() - interval '40 days', now() - interval '40 days', $1, true, 10, 'forty days ago'),
		(now() - interval '400 days', now() - interval '400 days', $1, true, 10, 'a year ago')`, id)
	w.Exec(t, `INSERT INTO sentry_notices (kind, key, created_at, sent_at, claimed_by, claimed_until) VALUES
		('digest', 'digest-old', now() - interval '40 days', now() - interval '40 days', NULL, NULL),
		('digest', 'digest-yesterday', now() - interval '30 hours', now() - interval '30 hours', NULL, NULL),
		('digest', 'digest-sending', now() - interval '40 days', NULL, 'other', now() + interval '1 minute')`)
	// A release of 40 days ago, no longer live (no product, not primed
	// since): one file its own, one holding the bytes of a live file.
	w.Exec(t, `WITH r AS (INSERT INTO sentry_releases (name, manifest_url, manifest_sha256, file_count, total_bytes, first_seen, updated_at)
			VALUES ('0.9', 'http://master/0.9/SHA256SUMS', 'x', 2, 10, now() - interval '40 days', now() - interval '40 days') RETURNING id)
		INSERT INTO sentry_release_files (release_id, path, size, algo, hash)
		SELECT r.id, 'own.exe', 10, 'sha256', repeat('a', 64) FROM r
		UNION ALL
		SELECT r.id, 'shared.exe', d.size, d.algo, d.hash FROM r, (SELECT * FROM sentry_block_digests ORDER BY hash LIMIT 1) d`)
	w.Exec(t, `INSERT INTO sentry_block_digests (algo, hash, size, block_size, digests, computed_at) VALUES
		('sha256', repeat('a', 64), 10, 16384, decode(repeat('00', 32), 'hex'), now() - interval '40 days'),
		('sha256', repeat('b', 64), 10, 16384, decode(repeat('00', 32), 'hex'), now() - interval '40 days'),
		('sha256', repeat('c', 64), 10, 16384, decode(repeat('00', 32), 'hex'), now())`)

	// The defaults: sentry_log kept whole.
	r := sentry.Retention(d.Config)
	p, err := w.Store.Prune(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if p.Log != 0 || p.Notices != 1 || p.Digests != 2 {
		t.Errorf("pruned %+v; want no log row, the old sent notice, and the digests of 0.9's own file and of no file", p)
	}
	if n := count(`SELECT count(*) FROM sentry_log`); n != 3 {
		t.Errorf("%d log rows left, want all 3 (retention.sentry_log 0 keeps them)", n)
	}
	if n := count(`SELECT count(*) FROM sentry_notices WHERE key IN ('digest-yesterday', 'digest-sending')`); n != 2 {
		t.Errorf("%d of yesterday's and the one being sent left, want both", n)
	}
	if n := count(`SELECT count(*) FROM sentry_block_digests`); n != live+1 {
		t.Errorf("%d digests left, want the live release's %d and the one just computed", n, live)
	}
	// Retention of checks at 1h: yesterday's notice stays all the same.
	if p, err := w.Store.Prune(ctx, store.Retention{Checks: time.Hour, Rollup: time.Hour, Products: r.Products}); err != nil || p.Notices != 0 {
		t.Errorf("prune at 1h: %+v %v; want no notice pruned within two days", p, err)
	}

	// The release primed and recorded 40 days ago is live while its
	// product is active, and not once it is switched off.
	w.Exec(t, `UPDATE sentry_releases SET updated_at = now() - interval '40 days' WHERE name = '1.5'`)
	w.Exec(t, `UPDATE sentry_runs SET started_at = started_at - interval '40 days'`)
	w.Exec(t, `UPDATE sentry_block_digests SET computed_at = computed_at - interval '40 days' WHERE hash <> repeat('c', 64)`)
	if p, err := w.Store.Prune(ctx, r); err != nil || p.Digests != 0 {
		t.Errorf("an active product's release: %+v %v; want its digests kept", p, err)
	}
	w.Exec(t, `UPDATE mirror_products SET active = false`)
	if p, err := w.Store.Prune(ctx, r); err != nil || p.Digests != int64(live) {
		t.Errorf("its product switched off: %+v %v; want its %d digests dropped", p, err, live)
	}
	if n := count(`SELECT count(*) FROM sentry_block_digests`); n != 1 {
		t.Errorf("%d digests left, want the one just computed", n)
	}

	// retention.sentry_log 30d: the rows of 40 and 400 days go.
	r.SentryLog = 30 * 24 * time.Hour
	if p, err := w.Store.Prune(ctx, r); err != nil || p.Log != 2 {
		t.Errorf("retention.sentry_log 30d: %+v %v; want the 2 old log rows", p, err)
	}
	var reason string
	w.QueryRow(t, `SELECT reason FROM sentry_log`, nil, &reason)
	if !strings.Contains(reason, "1.5") {
		t.Errorf("the log row left says %q; want the prime's", reason)
	}
}
