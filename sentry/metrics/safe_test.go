package metrics_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorsentry/sentry/sentry/metrics"
	"github.com/mirrorsentry/sentry/sentry/observe"
)

// panicking is a collector that panics, as one did on a mirror name that
// is no UTF-8 (a bouncer database in SQL_ASCII).
type panicking struct{}

func (panicking) Describe(ch chan<- *prometheus.Desc) {
	ch <- prometheus.NewDesc("sentry_test_panics", "A collector that panics.", nil, nil)
}
func (panicking) Collect(chan<- prometheus.Metric) {
	panic("label value \"caf\\xe9\" is not valid UTF-8")
}

// TestMetricsNeverAnswerAStackTrace: a mirror name that is no UTF-8 is a
// label all the same (it used to panic the run's observer and the
// scrape), and a collector that panics is logged and left out: /metrics
// serves the rest, and never a stack trace.
func TestMetricsNeverAnswerAStackTrace(t *testing.T) {
	var logs bytes.Buffer
	m := metrics.New(nil, slog.New(slog.NewTextHandler(&logs, nil)))
	m.CheckDone(observe.CheckEvent{Mirror: "caf\xe9", Result: "ok"})
	m.CheckDone(observe.CheckEvent{Mirror: "evil\x1b[2J\u202e", Result: "ok"})
	m.Registry().MustRegister(panicking{})

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusOK {
		t.Errorf("/metrics: %d", rec.Code)
	}
	for _, bad := range []string{"stack trace", "goroutine 1", ".go:", "panic", "An error has occurred"} {
		if bytes.Contains(body, []byte(bad)) {
			t.Errorf("/metrics holds %q:\n%s", bad, body)
		}
	}
	if !bytes.Contains(body, []byte("sentry_checks_total{mirror=\"caf\uFFFD\",result=\"ok\"} 1")) ||
		!bytes.Contains(body, []byte(`sentry_checks_total{mirror="evil␛[2J[U+202E]",result="ok"} 1`)) {
		t.Errorf("the mirrors' checks are not served:\n%s", body)
	}
	if !strings.Contains(logs.String(), "metrics: some series could not be gathered") || strings.Contains(logs.String(), ".go:") {
		t.Errorf("log:\n%s", logs.String())
	}
}
