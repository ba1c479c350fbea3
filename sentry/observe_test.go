package sentry_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/metrics"
	"github.com/mirrorsentry/sentry/sentry/notify"
	"github.com/mirrorsentry/sentry/sentry/observe"
)

// scrape fetches /metrics as a Prometheus server would and parses it.
func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the value of the series of family name with the given labels.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricsAfterSweeps(t *testing.T) {
	var m *metrics.Metrics
	w := setupReport(t, func(d *sentry.Deps) observe.Observer {
		m = metrics.New(d.Store.Pool(), d.Logger)
		return m
	})
	fams := scrape(t, m)

	// Checks by mirror and result equal the checks counted in the
	// database (routine ones have no row of their own).
	rows, err := w.b.st.Pool().Query(context.Background(), `
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
		if v, ok := value(t, fams, "sentry_checks_total", map[string]string{"mirror": mirror, "result": result}); !ok || v != count {
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
	if err := w.b.st.Pool().QueryRow(context.Background(), `SELECT sum(c.bytes) FROM sentry_checks c
		JOIN mirror_mirrors m ON m.id = c.mirror_id WHERE m.name = 'good1' AND c.result = 'ok' AND c.hashed`).Scan(&bytes); err != nil {
		t.Fatal(err)
	}
	if v, _ := value(t, fams, "sentry_verified_bytes_total", map[string]string{"mirror": "good1"}); v != bytes || v == 0 {
		t.Errorf("verified bytes of good1 %v, recorded %v", v, bytes)
	}
	// Mirrors by state: flaky is down, the four others up.
	for state, want := range map[string]float64{"up": 4, "down": 1, "unknown": 0, "disabled": 0} {
		if v, ok := value(t, fams, "sentry_mirrors", map[string]string{"state": state}); !ok || v != want {
			t.Errorf("sentry_mirrors{state=%q} = %v, want %v", state, v, want)
		}
	}
	// Durations: one prime, one sweep, one deep sweep; last completions set.
	for _, kind := range []string{"prime", "sweep", "deep_sweep"} {
		if v, _ := value(t, fams, "sentry_run_duration_seconds", map[string]string{"kind": kind}); v != 1 {
			t.Errorf("sentry_run_duration_seconds{kind=%q} count %v, want 1", kind, v)
		}
		if v, _ := value(t, fams, "sentry_last_completed_run_timestamp_seconds", map[string]string{"kind": kind}); v < float64(time.Now().Add(-time.Hour).Unix()) {
			t.Errorf("last completed %s at %v", kind, v)
		}
		if v, ok := value(t, fams, "sentry_guard_activations_total", map[string]string{"kind": kind}); !ok || v != 0 {
			t.Errorf("guard activations of %s: %v %v", kind, v, ok)
		}
	}

	// The guard: every mirror failing at once is sentry's network.
	for _, s := range w.servers {
		failing(s).Store(true)
	}
	sweepNow(t, w.d, false)
	fams = scrape(t, m)
	if v, _ := value(t, fams, "sentry_guard_activations_total", map[string]string{"kind": "sweep"}); v != 1 {
		t.Errorf("guard activations after a mass failure: %v, want 1", v)
	}
	if v, _ := value(t, fams, "sentry_runs_total", map[string]string{"kind": "sweep", "outcome": "guarded"}); v != 1 {
		t.Errorf("guarded sweeps: %v, want 1", v)
	}
}

// webhookReceiver records the POSTs it gets.
type webhookReceiver struct {
	mu     sync.Mutex
	events []notify.Event
	fail   int // answer 503 to this many requests first
	*httptest.Server
}

func newReceiver(t *testing.T, fail int) *webhookReceiver {
	r := &webhookReceiver{fail: fail}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.fail > 0 {
			r.fail--
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(req.Body)
		var e notify.Event
		if err := json.Unmarshal(body, &e); err != nil || req.Header.Get("X-Sentry-Event") != e.Event {
			t.Errorf("webhook body %q: %v", body, err)
		}
		r.events = append(r.events, e)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *webhookReceiver) got() []notify.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Event(nil), r.events...)
}

func TestWebhookOnePostPerStateChange(t *testing.T) {
	recv := newReceiver(t, 1) // the first POST fails and is retried
	var n *notify.Notifier
	w := setupReport(t, func(d *sentry.Deps) observe.Observer {
		n = notify.New(notify.Options{URLs: []string{recv.URL + "/hook?token=x"}, RetryWaitMin: time.Millisecond,
			RetryWaitMax: 5 * time.Millisecond, Vantage: "test"})
		return n
	})
	// flaky went down in the fixture's second sweep; bring it back.
	w.flaky.Store(false)
	sweepNow(t, w.d, false)
	sweepNow(t, w.d, false)
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := recv.got()
	var changes []struct{ From, To string }
	rows, err := w.b.st.Pool().Query(context.Background(), `SELECT from_state, to_state FROM sentry_state_changes ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c struct{ From, To string }
		if err := rows.Scan(&c.From, &c.To); err != nil {
			t.Fatal(err)
		}
		changes = append(changes, c)
	}
	rows.Close()
	if len(changes) != 2 || len(got) != len(changes) {
		t.Fatalf("%d POSTs for %d recorded state changes: %+v", len(got), len(changes), got)
	}
	for i, e := range got {
		sc := e.StateChange
		if e.Event != notify.EventStateChanged || sc == nil || sc.Mirror != "flaky" || sc.From != changes[i].From ||
			sc.To != changes[i].To || sc.Reason == "" || e.Vantage != "test" || e.ID == "" {
			t.Errorf("POST %d: %+v %+v, recorded %+v", i, e, sc, changes[i])
		}
	}
}

func TestWebhookOnGuard(t *testing.T) {
	recv := newReceiver(t, 0)
	var n *notify.Notifier
	w := setupReport(t, func(d *sentry.Deps) observe.Observer {
		n = notify.New(notify.Options{URLs: []string{recv.URL}, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
		return n
	})
	for _, s := range w.servers {
		failing(s).Store(true)
	}
	rep := sweepNow(t, w.d, false)
	if rep.Outcome != "guarded" {
		t.Fatalf("outcome %s", rep.Outcome)
	}
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var guards []notify.Event
	for _, e := range recv.got() {
		if e.Event == notify.EventGuard {
			guards = append(guards, e)
		}
	}
	if len(guards) != 1 || guards[0].Guard.RunID != rep.RunID || !strings.Contains(guards[0].Guard.Reason, "sentry's own network") {
		t.Errorf("guard POSTs: %+v", guards)
	}
}
