package sentry_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/prime"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// dbFaultWorld is two mirrors taking one request at a time: "a", whose
// requests drive the outage, and "b".
func dbFaultWorld(t *testing.T) (w *world.World, a, b *localmirror.Server) {
	t.Helper()
	w = world.New(t, nil)
	a = world.Static(t, "a", w.Rel)
	w.AddMirror(t, "a", a.URL, &factory.MirrorSettingsOpts{MaxConcurrency: factory.Ptr(1)})
	b = world.Static(t, "b", w.Rel)
	w.AddMirror(t, "b", b.URL, &factory.MirrorSettingsOpts{MaxConcurrency: factory.Ptr(1)})
	return w, a, b
}

// runSummary is what a run left in the database.
type runSummary struct {
	outcome  string
	finished bool
	checks   int
	logRows  int
}

func summarise(t *testing.T, w *world.World, run int64) runSummary {
	t.Helper()
	var s runSummary
	if err := w.Pool().QueryRow(context.Background(), `SELECT outcome, finished_at IS NOT NULL,
		(SELECT count(*) FROM sentry_checks WHERE run_id = $1),
		(SELECT count(*) FROM sentry_log l WHERE l.log_date = r.started_at)
		FROM sentry_runs r WHERE id = $1`, run).Scan(&s.outcome, &s.finished, &s.checks, &s.logRows); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDatabaseRestartLosesNothing stops PostgreSQL in the middle of a prime
// (and of a sweep) and starts it again: every completed check is written,
// every mirror is marked as an uninterrupted run marks it (no location
// half-marked, none left out), and the run records its outcome.
//
// The outage starts at mirror a's second file request, or, in "prime from
// its start", as the prime starts checking mirrors (before any mirror could
// read what earlier runs verified) — in a prime, once the master's copy
// was read to the end, since marks wait for that. It ends at a's fourth file request,
// once sentry has failed to write checks and, in the prime, mirror b,
// finished during the outage, has failed to write its marks. The test must
// not run in parallel with others: it stops the server every test of the
// package uses (it is not parallel, so it runs before the parallel tests
// of the package are let go).
func TestDatabaseRestartLosesNothing(t *testing.T) {
	if !pgtest.Server().Managed() {
		t.Skip(pgtest.ErrNotManaged.Error())
	}
	tests := []struct {
		name      string
		sweep     bool
		fromStart bool // the outage starts with the prime, not at a's second request
	}{
		{name: "prime"},
		{name: "prime from its start", fromStart: true},
		{name: "sweep", sweep: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The same world without an outage, for what the run must
			// leave behind.
			ref, _, _ := dbFaultWorld(t)
			var refRun int64
			if tt.sweep {
				ref.Prime(t)
				refRun = ref.Sweep(t, false).RunID
			} else {
				refRun = ref.Prime(t).RunID
			}
			want, wantSum := ref.Marks(t), summarise(t, ref, refRun)

			w, a, bm := dbFaultWorld(t)
			d := w.Deps
			if tt.sweep {
				w.Prime(t)
			}
			watch := &watches{}
			d.Logger = slog.New(signalHandler{d.Logger.Handler(), watch})
			writeFailed := watch.on("writing checks failed")
			markFailed := watch.on("marking failed")

			// A prime marks once the master's copy was read to the end
			// (the mirrors are primed meanwhile): the outage comes after
			// that, for mirror b's marks to meet it.
			masterRead := watch.on("every file is the manifest's")
			if tt.sweep {
				masterRead = closed()
			}
			atStop, stopped := make(chan struct{}), make(chan struct{})
			atStart, started := make(chan struct{}), make(chan struct{})
			if tt.fromStart {
				// "run planned" is logged once the run's work is
				// recorded, and before any mirror is checked.
				watch.do("run planned", func() { <-masterRead; close(atStop); <-stopped })
			}
			method := map[bool]string{false: "GET", true: "HEAD"}[tt.sweep]
			bFirst := make(chan struct{})
			var bOnce sync.Once
			var files atomic.Int64
			a.HandleFunc(func(_ http.ResponseWriter, r *http.Request) bool {
				if !strings.Contains(r.URL.Path, w.Rel.Dir) || r.Method != method {
					return false
				}
				switch files.Add(1) {
				case 2:
					if !tt.fromStart {
						if !tt.sweep {
							<-bFirst // b has read its earlier results
						}
						<-masterRead
						close(atStop)
						<-stopped
					}
				case 4:
					close(atStart)
					<-started
				}
				return false
			})
			if !tt.sweep {
				// b does all its work while the database is down, marks
				// included.
				bm.HandleFunc(func(_ http.ResponseWriter, r *http.Request) bool {
					bOnce.Do(func() { close(bFirst) })
					<-stopped
					return false
				})
			}

			type result struct {
				mirrors []prime.MirrorSums
				run     int64
				out     string
				err     error
			}
			done := make(chan result, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				if tt.sweep {
					rep, err := sentry.Sweep(ctx, d, sentry.SweepOptions{})
					if err != nil {
						done <- result{err: err}
						return
					}
					done <- result{run: rep.RunID, out: rep.Outcome + " " + rep.Reason}
					return
				}
				rep, err := sentry.Prime(ctx, d, sentry.PrimeOptions{Release: "1.5"})
				if err != nil {
					done <- result{err: err}
					return
				}
				done <- result{mirrors: rep.Mirrors, run: rep.RunID, out: rep.Outcome + " " + rep.Reason}
			}()

			wait(t, atStop, "the start of the outage")
			pgtest.Server().Stop(t)
			close(stopped)
			wait(t, atStart, "mirror a's fourth file request")
			wait(t, writeFailed, "a failed write of checks")
			if !tt.sweep {
				wait(t, markFailed, "mirror b's marks to meet the outage")
			}
			pgtest.Server().Start(t)
			close(started)

			var res result
			select {
			case res = <-done:
			case <-time.After(3 * time.Minute):
				t.Fatal("the run did not end")
			}
			if res.err != nil {
				t.Fatalf("run failed: %v", res.err)
			}
			if !strings.HasPrefix(res.out, store.OutcomeCompleted) {
				t.Errorf("outcome %q, want completed", res.out)
			}
			got := summarise(t, w, res.run)
			if got != wantSum {
				t.Errorf("the run left %+v; an uninterrupted run leaves %+v", got, wantSum)
			}
			if m := w.Marks(t); !world.SameMarks(m, want) {
				t.Errorf("marks %v; an uninterrupted run marks %v", m, want)
			}
			for _, m := range res.mirrors {
				if !m.Marked || m.State != "ok" || m.FilesOK != 4 {
					t.Errorf("mirror %s: %+v", m.Name, m)
				}
			}
		})
	}
}

// closed is a channel closed already.
func closed() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}
