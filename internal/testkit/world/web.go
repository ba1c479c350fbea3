package world

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/web"
)

// ServePage serves the status page of o until the test ends.
func ServePage(t testing.TB, o web.Options) *httptest.Server {
	t.Helper()
	page, err := web.New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	page.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// StatusPage serves the status page over a report world until the test
// ends; the next sweep is always 14m30s away.
func StatusPage(t testing.TB) (*ReportWorld, *httptest.Server) {
	t.Helper()
	w := NewReportWorld(t)
	return w, ServePage(t, web.Options{Reporter: report.New(w.Pool(), nil),
		NextSweep: func(after time.Time) time.Time { return after.Add(14*time.Minute + 30*time.Second) }})
}
