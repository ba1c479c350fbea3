package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
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
