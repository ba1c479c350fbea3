package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/metrics"
	"github.com/mirrorsentry/sentry/sentry/observe"
)

func TestMetricsAfterSweeps(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	w := world.NewReportWorld(t, func(d *sentry.Deps) observe.Observer {
		m = metrics.New(d.Store.Pool(), d.Logger)
		return m
	})
	fams := world.Scrape(t, m.Handler())

	// Checks by mirror and result equal the checks counted in the
	// database (routine ones have no row of their own).
	rows, err := w.Pool().Query(context.Background(), `
		SELECT m.name, h.result, sum(h.n) FROM sentry_check_hourly h JOIN mirror_mirrors m ON m.id = h.mirror_id GROUP BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var mirror, result string
		var count float64
		if err := rows.Scan(&mirror, &result, &count); err != nil {
			t.Fatal(err)
		}
		n++
		if v, ok := world.Value(t, fams, "sentry_checks_total", map[string]string{"mirror": mirror, "result": result}); !ok || v != count {
			t.Errorf("sentry_checks_total{mirror=%q,result=%q} = %v (present %v), recorded %v", mirror, result, v, ok, count)
		}
	}
	rows.Close()
	if n < 8 {
		t.Fatalf("only %d (mirror, result) pairs recorded", n)
	}
	if series := len(fams["sentry_checks_total"].GetMetric()); series != n {
		t.Errorf("%d sentry_checks_total series, %d pairs recorded", series, n)
	}

	// Bytes verified equal the sizes of the hashed good checks.
	var bytes float64
	if err := w.Pool().QueryRow(context.Background(), `SELECT sum(c.bytes) FROM sentry_checks c
		JOIN mirror_mirrors m ON m.id = c.mirror_id WHERE m.name = 'good1' AND c.result = 'ok' AND c.hashed`).Scan(&bytes); err != nil {
		t.Fatal(err)
	}
	if v, _ := world.Value(t, fams, "sentry_verified_bytes_total", map[string]string{"mirror": "good1"}); v != bytes || v == 0 {
		t.Errorf("verified bytes of good1 %v, recorded %v", v, bytes)
	}
	// Mirrors by state: flaky is down, the four others up.
	for state, want := range map[string]float64{"up": 4, "down": 1, "unknown": 0, "disabled": 0} {
		if v, ok := world.Value(t, fams, "sentry_mirrors", map[string]string{"state": state}); !ok || v != want {
			t.Errorf("sentry_mirrors{state=%q} = %v, want %v", state, v, want)
		}
	}
	// Durations: one prime, one sweep, one deep sweep; last completions set.
	for _, kind := range []string{"prime", "sweep", "deep_sweep"} {
		if v, _ := world.Value(t, fams, "sentry_run_duration_seconds", map[string]string{"kind": kind}); v != 1 {
			t.Errorf("sentry_run_duration_seconds{kind=%q} count %v, want 1", kind, v)
		}
		if v, _ := world.Value(t, fams, "sentry_last_completed_run_timestamp_seconds", map[string]string{"kind": kind}); v < float64(time.Now().Add(-time.Hour).Unix()) {
			t.Errorf("last completed %s at %v", kind, v)
		}
		if v, ok := world.Value(t, fams, "sentry_guard_activations_total", map[string]string{"kind": kind}); !ok || v != 0 {
			t.Errorf("guard activations of %s: %v %v", kind, v, ok)
		}
	}

	// The guard: every mirror failing at once is sentry's network.
	for _, s := range w.Servers {
		world.Failing(s).Store(true)
	}
	w.Sweep(t, false)
	fams = world.Scrape(t, m.Handler())
	if v, _ := world.Value(t, fams, "sentry_guard_activations_total", map[string]string{"kind": "sweep"}); v != 1 {
		t.Errorf("guard activations after a mass failure: %v, want 1", v)
	}
	if v, _ := world.Value(t, fams, "sentry_runs_total", map[string]string{"kind": "sweep", "outcome": "guarded"}); v != 1 {
		t.Errorf("guarded sweeps: %v, want 1", v)
	}
}
