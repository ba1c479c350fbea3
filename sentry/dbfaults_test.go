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

	"github.com/mirrorsentry/sentry/internal/mirrortest"
	"github.com/mirrorsentry/sentry/internal/pgtest"
	"github.com/mirrorsentry/sentry/sentry"
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
	mu sync.Mutex
	ch map[string]chan struct{}
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
func dbFaultWorld(t *testing.T) (*sentry.Deps, *bundle, *mirrortest.Server, *mirrortest.Server) {
	t.Helper()
	d, b := setup(t)
	a, err := mirrortest.NewStatic("a", b.rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b.addMirror(t, "a", a.URL, "pull", "", 1)
	bm, err := mirrortest.NewStatic("b", b.rel)
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
// Mirror a's second file request stops the database; its fourth waits until
// sentry has failed to write checks (and, in the prime, until mirror b,
// finished during the outage, has tried to write its marks), then starts
// the database again. The test must not run in parallel with others: it
// stops the server every test of the package uses.
func TestDatabaseRestartLosesNothing(t *testing.T) {
	if !pgtest.Server().Managed() {
		t.Skip(pgtest.ErrNotManaged.Error())
	}
	for _, sweepRun := range []bool{false, true} {
		name := "prime"
		if sweepRun {
			name = "sweep"
		}
		t.Run(name, func(t *testing.T) {
			// The same world without an outage, for what the run must
			// leave behind.
			dRef, bRef, _, _ := dbFaultWorld(t)
			var refRun int64
			if sweepRun {
				prime(t, dRef)
				refRun = sweep(t, dRef, false).RunID
			} else {
				refRun = prime(t, dRef).RunID
			}
			want, wantSum := bRef.marks(t), summarise(t, bRef, refRun)

			d, b, a, bm := dbFaultWorld(t)
			if sweepRun {
				prime(t, d)
			}
			w := &watches{}
			d.Logger = slog.New(signalHandler{d.Logger.Handler(), w})
			writeFailed := w.on("writing checks failed")
			markFailed := w.on("marking failed")

			atStop, stopped := make(chan struct{}), make(chan struct{})
			atStart, started := make(chan struct{}), make(chan struct{})
			var files atomic.Int64
			a.HandleFunc(func(_ http.ResponseWriter, r *http.Request) bool {
				if !strings.Contains(r.URL.Path, b.rel.Dir) || r.Method != map[bool]string{false: "GET", true: "HEAD"}[sweepRun] {
					return false
				}
				switch files.Add(1) {
				case 2:
					close(atStop)
					<-stopped
				case 4:
					close(atStart)
					<-started
				}
				return false
			})
			// In the prime, b does all its work while the database is
			// down, marks included.
			if !sweepRun {
				bm.HandleFunc(func(_ http.ResponseWriter, r *http.Request) bool {
					<-stopped
					return false
				})
			}

			type result struct {
				rep any
				run int64
				out string
				err error
			}
			done := make(chan result, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				if sweepRun {
					rep, err := sentry.Sweep(ctx, d, sentry.SweepOptions{})
					if err != nil {
						done <- result{err: err}
						return
					}
					done <- result{rep: rep, run: rep.RunID, out: rep.Outcome + " " + rep.Reason}
					return
				}
				rep, err := sentry.Prime(ctx, d, sentry.PrimeOptions{Release: "1.5"})
				if err != nil {
					done <- result{err: err}
					return
				}
				done <- result{rep: rep, run: rep.RunID, out: rep.Outcome + " " + rep.Reason}
			}()

			wait(t, atStop, "mirror a's second file request")
			pgtest.Server().Stop(t)
			close(stopped)
			wait(t, atStart, "mirror a's fourth file request")
			wait(t, writeFailed, "a failed write of checks")
			if !sweepRun {
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
			if rep, ok := res.rep.(*sentry.PrimeReport); ok {
				for _, m := range rep.Mirrors {
					if !m.Marked || m.State != "ok" {
						t.Errorf("mirror %s: %+v", m.Name, m)
					}
				}
			}
		})
	}
}
