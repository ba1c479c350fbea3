package sentry_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/sweep"
)

func sweepNow(t *testing.T, d *sentry.Deps, deep bool) *sweep.Report {
	t.Helper()
	rep, err := sentry.Sweep(context.Background(), d, sentry.SweepOptions{Deep: deep})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func sweepSums(t *testing.T, rep *sweep.Report, name string) sweep.MirrorSums {
	t.Helper()
	for _, m := range rep.Mirrors {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("mirror %s not in sweep report", name)
	return sweep.MirrorSums{}
}

// failing makes s answer 503 to everything while on is set.
func failing(s *localmirror.Server) *atomic.Bool {
	var on atomic.Bool
	s.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		if !on.Load() {
			return false
		}
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return true
	})
	return &on
}
