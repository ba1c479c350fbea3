package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirrorsentry/sentry/sentry/record"
)

// Instance roles: a daemon (`sentry run`) works every run; a command
// (`sentry prime`, `sentry sweep`) works only the run it started or
// joined.
const (
	RoleDaemon  = "daemon"
	RoleCommand = "command"
)

// Worker is one process's share of the work on the database. It registers
// the process as an instance (with its vantage point), and then its parts
// do one job each:
//   - the claim loop claims rows under a lease (claimer.go);
//   - each claimed row is worked through its job, then completed or given
//     back (work.go);
//   - the heartbeat renews the leases of what the worker holds, and the
//     watchdog stops its own work when it could not (self-fencing)
//     (heartbeat.go, over holdings.go);
//   - runs whose rows are all done are judged (judging.go).
//
// This file is the worker's life — NewWorker, Start, Shutdown — and the
// signals between its parts and Drive.
type Worker struct {
	e    *Engine
	log  *slog.Logger
	id   string
	role string
	rec  *record.Recorder
	only atomic.Int64 // a command's run; 0 for a daemon

	// stop ends when the worker is to claim nothing more; work ends when
	// the work in flight is to be cancelled.
	stop       context.Context
	work       context.Context
	cancelWork context.CancelFunc
	quit       context.CancelFunc // ends the heartbeat, the watchdog and the listener
	loops      sync.WaitGroup     // claim loop, heartbeat, watchdog, listener

	held     *holdings // the rows and judgings the worker holds under lease
	tasks    *tasks    // the runs it prepared
	inflight *inflight // the rows and judgings being worked
	signals  *signals  // wake-ups of the claim loop and of waitRun
}

// NewWorker registers an instance of role for this process. stop ends its
// claiming; work is the context of the work itself (cancelling it cancels
// checks in flight). Start it with Start; close it with Shutdown.
func (e *Engine) NewWorker(ctx context.Context, role string, stop, work context.Context) (*Worker, error) {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	w := &Worker{
		e: e, id: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b)), role: role, stop: stop,
		held: newHoldings(), tasks: newTasks(), inflight: &inflight{}, signals: newSignals(),
	}
	w.log = e.log.With("instance", w.id)
	w.work, w.cancelWork = context.WithCancel(work)
	if _, err := e.pool.Exec(ctx, `INSERT INTO sentry_instances (id, vantage, role, host, pid)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET last_seen = now(), stopped_at = NULL`,
		w.id, e.opts.Vantage, role, host, os.Getpid()); err != nil {
		w.cancelWork()
		return nil, e.wrap("register instance", err)
	}
	w.rec = record.New(e.store, w.log)
	return w, nil
}

// ID is the worker's instance id (sentry_instances.id).
func (w *Worker) ID() string { return w.id }

func (w *Worker) onlyRun() int64 { return w.only.Load() }

// Start begins claiming, heartbeats, the watchdog and listening.
func (w *Worker) Start() {
	bg, quit := context.WithCancel(context.WithoutCancel(w.work))
	w.quit = quit
	w.loops.Add(4)
	go func() { defer w.loops.Done(); w.heartbeat(bg) }()
	go func() { defer w.loops.Done(); w.watchdog(bg) }()
	go func() { defer w.loops.Done(); w.listen(bg) }()
	go func() { defer w.loops.Done(); w.claimLoop() }()
}

// Shutdown waits for the claim loop to end (stop must have ended) and for
// the work in flight, cancelling it after grace (with grace < 0, it waits
// until the work's own context ends it), writes every completed check,
// gives back unfinished rows and records the instance stopped.
func (w *Worker) Shutdown(grace time.Duration) {
	done := w.inflight.close()
	if grace < 0 {
		<-done
	} else {
		t := time.NewTimer(grace)
		select {
		case <-done:
		case <-t.C:
			w.log.Warn("grace over: cancelling the checks still running", "grace", grace)
			w.cancelWork()
			<-done
		}
		t.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := w.rec.Close(ctx); err != nil {
		w.log.Error("some checks could not be written", "err", err)
	}
	if w.quit != nil {
		w.quit()
	}
	w.cancelWork()
	w.loops.Wait()
	if err := w.e.stopInstance(ctx, w.id); err != nil {
		w.log.Warn("could not record this instance stopped; others take over its work after the lease", "err", err)
	}
}

// inflight counts the work in flight (rows and judgings), so that Shutdown
// can wait for it. Once closed, no work starts.
type inflight struct {
	mu      sync.Mutex // orders start (wg.Add) with close's wait
	closing bool
	wg      sync.WaitGroup
}

// start counts one piece of work starting, unless Shutdown has begun
// waiting: then it reports false and the work must not start (a row not
// started is given back by Shutdown; a judgement's lease lapses). Each
// start that reports true is matched by a done.
func (f *inflight) start() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		return false
	}
	f.wg.Add(1)
	return true
}

func (f *inflight) done() { f.wg.Done() }

// close lets no more work start and returns a channel closed once the
// work in flight has ended.
func (f *inflight) close() <-chan struct{} {
	f.mu.Lock()
	f.closing = true
	f.mu.Unlock()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	return done
}

// signals are the worker's wake-ups: of the claim loop (wake), and of
// whoever waits for a change (changes: a row or run ended here, or work
// was announced on the database).
type signals struct {
	wakeCh  chan struct{}
	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every change
}

func newSignals() *signals {
	return &signals{wakeCh: make(chan struct{}, 1), changed: make(chan struct{})}
}

// wake makes the claim loop look for work now.
func (s *signals) wake() {
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
}

// woken is where the claim loop hears wake.
func (s *signals) woken() <-chan struct{} { return s.wakeCh }

// changes returns a channel closed at the next change.
func (s *signals) changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// change announces a change, and wakes the claim loop.
func (s *signals) change() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	s.wake()
}

// listen wakes the claim loop, and whoever waits for a run to end, on
// every notification of work, reconnecting after errors.
func (w *Worker) listen(ctx context.Context) {
	wait := time.Second
	for ctx.Err() == nil {
		err := w.e.listen(ctx, w.signals.change)
		if ctx.Err() != nil {
			return
		}
		w.log.Debug("listening for work failed; polling meanwhile", "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		wait = min(2*wait, time.Minute)
	}
}

// ErrStopped is returned when the wait for a run ended because this
// process is stopping: the run goes on with the other sentries.
var ErrStopped = errors.New("stopped before the run ended")

// waitRun waits until run runID has ended and returns its status. It
// returns early, with ctx's error or ErrStopped, when ctx or stop end.
func (w *Worker) waitRun(ctx, stop context.Context, runID int64) (RunStatus, error) {
	t := time.NewTicker(w.e.opts.Poll)
	defer t.Stop()
	for {
		ch := w.signals.changes()
		st, err := w.e.status(ctx, runID)
		if err == nil && st.Finished {
			return st, nil
		}
		if err != nil && ctx.Err() == nil {
			w.log.Warn("could not read the run's progress; retrying", "run", runID, "err", err)
		}
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			return st, ctx.Err()
		case <-stop.Done():
			return st, ErrStopped
		}
	}
}
