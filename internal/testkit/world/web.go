package world

import (
	"net/http"
	"net/http/httptest"
	"testing"

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
