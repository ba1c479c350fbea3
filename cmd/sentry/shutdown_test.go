package main

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
)

func TestDaemonSIGTERMMidSweepKeepsCompletedChecks(t *testing.T) {
	t.Parallel()
	w, m := newSweepingWorld(t)
	// One request at a time to this mirror, so that the order is fixed.
	w.Settings(t, &factory.MirrorSettingsOpts{MirrorID: w.Mirrors["m"], MaxConcurrency: factory.Ptr(1)})
	// Checks are counted by the hour (those that found what was known
	// have no row of their own): what the sweep adds is what it stored.
	var primed int
	w.Query(t, `SELECT coalesce(sum(n), 0) FROM sentry_check_hourly`, &primed)

	// From now on, the mirror answers until the fourth file, which hangs
	// until sentry gives up on it.
	var answered atomic.Int64
	var sweeping atomic.Bool
	sweeping.Store(true)
	blocked := make(chan struct{})
	var once sync.Once
	m.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		if !sweeping.Load() {
			return false
		}
		if strings.HasSuffix(r.URL.Path, "lang-3.xpi") {
			once.Do(func() { close(blocked) })
			<-r.Context().Done()
			return true
		}
		return false
	})
	m.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		answered.Add(1) // outermost: counts every request answered
		return false
	})

	d := w.startDaemon(t, "d")
	select {
	case <-blocked:
	case <-d.exited:
		t.Fatalf("daemon exited: %v\n%s", d.err, d.logText())
	case <-time.After(90 * time.Second):
		t.Fatalf("the sweep never reached the hanging file:\n%s", d.logText())
	}
	before := answered.Load() - 1 // the hanging request is not answered
	if err := d.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, d.logText())
	}
	var checks, runs int
	var outcome string
	w.Query(t, `SELECT count(*) FROM sentry_runs WHERE kind = 'sweep'`, &runs)
	w.Query(t, `SELECT outcome FROM sentry_runs WHERE kind = 'sweep' ORDER BY id DESC LIMIT 1`, &outcome)
	w.Query(t, `SELECT coalesce(sum(n), 0) FROM sentry_check_hourly`, &checks)
	checks -= primed
	if runs != 1 || outcome != "interrupted" {
		t.Errorf("%d sweep runs, the last %s; want one, interrupted:\n%s", runs, outcome, d.logText())
	}
	if int64(checks) != before || checks < 2 {
		t.Errorf("%d checks stored, but the mirror answered %d before the stop", checks, before)
	}
	if !strings.Contains(d.logText(), "grace over") {
		t.Errorf("the hanging check was not cancelled at the end of the grace:\n%s", d.logText())
	}
}
