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

	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/prime"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// signalHandler passes log records on and closes a channel the first time
// a record's message contains a watched phrase: tests wait on what sentry
// did, not on time.
type signalHandler struct {
	slog.Handler
	w *watches
}

type watches struct {
	mu    sync.Mutex
	ch    map[string]chan struct{}
	hooks map[string]func() // run once, synchronously, by the logging goroutine
}

// do makes the first record holding phrase run fn before it is logged:
// whatever logged it waits for fn.
func (w *watches) do(phrase string, fn func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hooks == nil {
		w.hooks = map[string]func(){}
	}
	w.hooks[phrase] = fn
}

func (w *watches) on(phrase string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = map[string]chan struct{}{}
	}
	if w.ch[phrase] == nil {
		w.ch[phrase] = make(chan struct{})
	}
	return w.ch[phrase]
}

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.w.mu.Lock()
	var hooks []func()
	for phrase, fn := range h.w.hooks {
		if strings.Contains(r.Message, phrase) {
			hooks = append(hooks, fn)
			delete(h.w.hooks, phrase)
		}
	}
	for phrase, ch := range h.w.ch {
		if strings.Contains(r.Message, phrase) {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
	}
	h.w.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
	return h.Handler.Handle(ctx, r)
}

func (h signalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return signalHandler{h.Handler.WithAttrs(as), h.w}
}

func (h signalHandler) WithGroup(name string) slog.Handler {
	return signalHandler{h.Handler.WithGroup(name), h.w}
}

// wait fails the test unless ch closes within a generous bound.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(90 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// dbFaultWorld is two mirrors taking one request at a time: "a", whose
// requests drive the outage, and "b".
func dbFaultWorld(t *testing.T) (*sentry.Deps, *bundle, *localmirror.Server, *localmirror.Server) {
	t.Helper()
	d, b := setup(t)
	a, err := localmirror.NewStatic("a", b.rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b.addMirror(t, "a", a.URL, "pull", "", 1)
	bm, err := localmirror.NewStatic("b", b.rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bm.Close() })
	b.addMirror(t, "b", bm.URL, "pull", "", 1)
	return d, b, a, bm
}

// runSummary is what a run left in the database.
type runSummary struct {
	outcome  string
	finished bool
	checks   int
	logRows  int
}

func summarise(t *testing.T, b *bundle, run int64) runSummary {
	t.Helper()
	var s runSummary
	if err := b.st.Pool().QueryRow(context.Background(), `SELECT outcome, finished_at IS NOT NULL,
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
// read what earlier runs verified). It ends at a's fourth file request,
// once sentry has failed to write checks and, in the prime, mirror b,
// finished during the outage, has failed to write its marks. The test must
// not run in parallel with others: it stops the server every test of the
// package uses.
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
			dRef, bRef, _, _ := dbFaultWorld(t)
			var refRun int64
			if tt.sweep {
				primeRelease(t, dRef)
				refRun = sweepNow(t, dRef, false).RunID
			} else {
				refRun = primeRelease(t, dRef).RunID
			}
			want, wantSum := bRef.marks(t), summarise(t, bRef, refRun)

			d, b, a, bm := dbFaultWorld(t)
			if tt.sweep {
				primeRelease(t, d)
			}
			w := &watches{}
			d.Logger = slog.New(signalHandler{d.Logger.Handler(), w})
			writeFailed := w.on("writing checks failed")
			markFailed := w.on("marking failed")

			atStop, stopped := make(chan struct{}), make(chan struct{})
			atStart, started := make(chan struct{}), make(chan struct{})
			if tt.fromStart {
				// "run planned" is logged once the run's work is
				// recorded, and before any mirror is checked.
				w.do("run planned", func() { close(atStop); <-stopped })
			}
			method := map[bool]string{false: "GET", true: "HEAD"}[tt.sweep]
			bFirst := make(chan struct{})
			var bOnce sync.Once
			var files atomic.Int64
			a.HandleFunc(func(_ http.ResponseWriter, r *http.Request) bool {
				if !strings.Contains(r.URL.Path, b.rel.Dir) || r.Method != method {
					return false
				}
				switch files.Add(1) {
				case 2:
					if !tt.fromStart {
						if !tt.sweep {
							<-bFirst // b has read its earlier results
						}
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
			got := summarise(t, b, res.run)
			if got != wantSum {
				t.Errorf("the run left %+v; an uninterrupted run leaves %+v", got, wantSum)
			}
			if m := b.marks(t); !sameMarks(m, want) {
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
