package metrics_test

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/realmirror"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/metrics"
	"github.com/mirrorsentry/sentry/sentry/report"
)

// promtool finds Debian's promtool (package prometheus).
func promtool(t *testing.T) string {
	t.Helper()
	return realmirror.Binary(t, "promtool", "prometheus")
}

// TestMetricsToAlertOn: a process that ran nothing exports, read from the
// database, every mirror's state (degraded included, as the report says
// it), the time of its last sweep, the runs of every kind by outcome, the
// last completed run of each kind and the uptake of recent releases; the
// scrape passes `promtool check metrics`, and the example rules pass
// `promtool check rules`.
func TestMetricsToAlertOn(t *testing.T) {
	t.Parallel()
	w := world.NewReportWorld(t) // ran here, but without metrics: another sentry's runs
	m := metrics.New(w.Pool(), w.Deps.Logger)
	fams := world.Scrape(t, m.Handler())

	states, err := report.New(w.Pool(), nil).States(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"good1": "up", "good2": "up", "corrupt": "degraded", "missing": "degraded", "flaky": "down"}
	for _, row := range states {
		if row.Condition() != want[row.Name] {
			t.Errorf("report: %s is %s (%s), want %s", row.Name, row.Condition(), row.Why(), want[row.Name])
		}
		for _, c := range report.Conditions {
			v, ok := world.Value(t, fams, "sentry_mirror_state", map[string]string{"mirror": row.Name, "state": c})
			if !ok || (v == 1) != (c == want[row.Name]) {
				t.Errorf("sentry_mirror_state{mirror=%q,state=%q} = %v (present %v)", row.Name, c, v, ok)
			}
		}
		up, ok := world.Value(t, fams, "sentry_mirror_up", map[string]string{"mirror": row.Name})
		if !ok || (up == 1) != (want[row.Name] != "down") {
			t.Errorf("sentry_mirror_up{mirror=%q} = %v (present %v)", row.Name, up, ok)
		}
		at, ok := world.Value(t, fams, "sentry_mirror_last_check_timestamp_seconds", map[string]string{"mirror": row.Name})
		if !ok || row.LastSweep == nil || math.Abs(at-float64(row.LastSweep.UnixNano())/1e9) > 0.001 {
			t.Errorf("last check of %s: %v (present %v), the report says %v", row.Name, at, ok, row.LastSweep)
		}
	}
	for _, kind := range []string{"prime", "sweep", "deep_sweep"} {
		if v, ok := world.Value(t, fams, "sentry_recent_runs", map[string]string{"kind": kind, "outcome": "completed"}); !ok || v != 1 {
			t.Errorf("sentry_recent_runs{kind=%q,outcome=completed} = %v (present %v), want 1", kind, v, ok)
		}
		if v, ok := world.Value(t, fams, "sentry_recent_runs", map[string]string{"kind": kind, "outcome": "failed"}); !ok || v != 0 {
			t.Errorf("sentry_recent_runs{kind=%q,outcome=failed} = %v (present %v), want 0", kind, v, ok)
		}
		for _, o := range report.EndOutcomes {
			if v, ok := world.Value(t, fams, "sentry_last_run_outcome", map[string]string{"kind": kind, "outcome": o}); !ok || (v == 1) != (o == "completed") {
				t.Errorf("sentry_last_run_outcome{kind=%q,outcome=%q} = %v (present %v)", kind, o, v, ok)
			}
		}
		if v, ok := world.Value(t, fams, "sentry_last_completed_run_timestamp_seconds", map[string]string{"kind": kind}); !ok ||
			v < float64(time.Now().Add(-time.Hour).Unix()) {
			t.Errorf("last completed %s: %v (present %v)", kind, v, ok)
		}
	}
	// good1 (50) and good2 (30) hold the whole release of the 100 points
	// of rating; flaky is down, corrupt and missing lack a file.
	if v, ok := world.Value(t, fams, "sentry_release_weighted_uptake", map[string]string{"release": "1.5"}); !ok || math.Abs(v-0.8) > 1e-9 {
		t.Errorf("sentry_release_weighted_uptake{release=1.5} = %v (present %v), want 0.8", v, ok)
	}
	if _, ok := world.Value(t, fams, "sentry_release_first_prime_timestamp_seconds", map[string]string{"release": "1.5"}); !ok {
		t.Error("no first prime time of release 1.5")
	}

	// A failed run counts, whoever ran it (a sweep from cron elsewhere),
	// and is the latest sweep's outcome; one of long ago is not counted.
	w.Exec(t, `INSERT INTO sentry_runs (kind, vantage, host, pid, outcome, reason, started_at, finished_at)
		VALUES ('sweep', 'elsewhere', 'cron-host', 1, 'failed', 'nothing to check', now(), now()),
		       ('sweep', 'elsewhere', 'cron-host', 1, 'failed', 'long ago', now() - interval '3 days', now() - interval '3 days')`)
	fams = world.Scrape(t, m.Handler())
	if v, _ := world.Value(t, fams, "sentry_recent_runs", map[string]string{"kind": "sweep", "outcome": "failed"}); v != 1 {
		t.Errorf("failed sweeps of the last day after one failed: %v, want 1", v)
	}
	if v, _ := world.Value(t, fams, "sentry_last_run_outcome", map[string]string{"kind": "sweep", "outcome": "failed"}); v != 1 {
		t.Errorf("the latest sweep's outcome is not failed: %v", v)
	}

	bin := promtool(t)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(body))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	rules, err := filepath.Abs("../../docs/prometheus/sentry-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "check", "rules", rules).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS: 11 rules found") {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}
