package sweep_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
)

func TestDeepSweepCoversEveryPairWithinPeriod(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	w.Static(t, "m1")
	w.Static(t, "m2")
	w.Prime(t)
	var clock atomic.Int64
	start := time.Now()
	d.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	period := d.Config.Sweep.DeepPeriod.D()
	if period != 7*24*time.Hour || d.Config.Schedule.DeepSweep != "0 3 * * *" {
		t.Fatalf("test assumes the defaults: period %s, deep schedule %q", period, d.Config.Schedule.DeepSweep)
	}
	// Two simulated periods of nightly deep sweeps.
	for day := 1; day <= 14; day++ {
		clock.Store(start.Add(time.Duration(day) * 24 * time.Hour).UnixNano())
		rep := w.Sweep(t, true)
		for _, m := range rep.Mirrors {
			// 4 files over 7 nights: one a night is the derived share.
			if m.Hashed < 1 || m.Hashed > 2 {
				t.Errorf("day %d, %s: hashed %d, want the share of 1 (2 at most when a pair falls due)", day, m.Name, m.Hashed)
			}
		}
	}
	// Every pair's hashes, the prime's included, are at most a period apart.
	rows, err := w.Pool().Query(context.Background(), `
		SELECT mirror_id, path, max(gap) FROM (
			SELECT mirror_id, path, checked_at - lag(checked_at) OVER (PARTITION BY mirror_id, path ORDER BY checked_at) AS gap
			FROM sentry_checks WHERE hashed AND result = 'ok' AND path <> '') g
		GROUP BY mirror_id, path`)
	if err != nil {
		t.Fatal(err)
	}
	type pair struct {
		Mirror int
		Path   string
		Gap    *time.Duration
	}
	pairs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[pair])
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 8 {
		t.Fatalf("%d pairs hashed, want 8", len(pairs))
	}
	for _, p := range pairs {
		if p.Gap == nil || *p.Gap > period {
			t.Errorf("mirror %d %s: longest time between hashes %v, want at most %s", p.Mirror, p.Path, p.Gap, period)
		}
	}
	// And the last hash of every pair is recent: none is left behind.
	var stale int
	if err := w.Pool().QueryRow(context.Background(), `SELECT count(*) FROM sentry_file_state WHERE hashed_at < $1`,
		start.Add(7*24*time.Hour)).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	if stale != 0 {
		t.Errorf("%d pairs not hashed in the second period", stale)
	}
}
