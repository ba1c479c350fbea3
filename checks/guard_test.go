package checks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestGuardStopsRetriesAndRedirects: a guard that starts refusing after
// the first request stops a check's retries and redirect hops too: nothing
// more is sent, and the check is sentry's own trouble (internal), never a
// fact about the mirror.
func TestGuardStopsRetriesAndRedirects(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/busy":
			w.WriteHeader(http.StatusServiceUnavailable) // retried without the guard
		case "/moved":
			http.Redirect(w, r, "/file", http.StatusFound)
		default:
			w.Header().Set("Content-Length", "4")
		}
	}))
	defer srv.Close()
	c, _ := newTestClient(t, func(o *ClientOptions) { o.Retries = 3 })
	for _, path := range []string{"/busy", "/moved"} {
		hits.Store(0)
		var allowed atomic.Int32
		allowed.Store(1)
		ctx := WithGuard(context.Background(), func() error {
			if allowed.Add(-1) < 0 {
				return errors.New("lease lapsed")
			}
			return nil
		})
		res := Head(ctx, c, Target{URL: srv.URL + path, Size: -1})
		if res.Kind != KindInternal || !errors.Is(res.Err, ErrGuarded) {
			t.Errorf("%s: %s (%v), want internal, guarded", path, res.Kind, res.Err)
		}
		if n := hits.Load(); n != 1 {
			t.Errorf("%s: %d requests reached the mirror, want 1", path, n)
		}
	}
	hits.Store(0)
	if res := Head(WithGuard(context.Background(), func() error { return nil }), c,
		Target{URL: srv.URL + "/moved", Size: -1}); res.Kind != KindOK || hits.Load() != 2 {
		t.Errorf("a guard that allows: %s, %d requests; want ok after the redirect, 2", res.Kind, hits.Load())
	}
}
