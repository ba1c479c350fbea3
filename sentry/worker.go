package sentry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/mirrorsentry/sentry/sentry/store"
)

// Worker is one sentry process's share of the work on the database: it
// registers the process as an instance (with its vantage point), claims
// work rows of running primes and sweeps under a lease, does them, and
// judges runs whose work is all done (guard, quorum, marks).
//
// A daemon's worker (`sentry run`) works every run; a command's worker
// (`sentry prime`, `sentry sweep`) works only the run it started, and
// judges it. Several processes, on one host or many, share a run this way:
// each mirror is worked by one process at a time, so per-mirror
// concurrency caps hold across processes; a process that dies loses its
// claims when their lease runs out, and another takes them over.
//
// Claiming uses `SELECT … FOR UPDATE SKIP LOCKED` on sentry_work: work
// items live and die with their run, in tables reports already join, so
// a job queue's own schema would add machinery without adding guarantees.
type Worker struct {
	d       *Deps
	log     *slog.Logger
	id      string
	vantage string
	role    string
	runID   int64 // a command's run; 0 for a daemon
	lease   time.Duration
	poll    time.Duration
	slots   int // mirrors worked at once
	global  *semaphore.Weighted
	rec     *Recorder
	// progress, when set, counts a command's checks on its terminal.
	progress *progress

	// stop ends when the worker is to claim nothing more; work ends when
	// the work in flight is to be cancelled.
	stop       context.Context
	work       context.Context
	cancelWork context.CancelFunc
	quit       context.CancelFunc // ends the heartbeat and the listener

	wakeCh chan struct{}
	rows   sync.WaitGroup // work rows and judging in flight
	loops  sync.WaitGroup // claim loop, heartbeat, listener

	mu       sync.Mutex
	held     map[store.WorkKey]context.CancelFunc
	runs     map[int64]*runWork
	judging  map[int64]bool
	changed  chan struct{} // closed and replaced whenever a row or run ends here
	lastTidy time.Time
}

// runWork is what a worker prepared to do a run's rows.
type runWork struct {
	sweep *sweepRun
	prime *primeRun
}

// workerOptions configure newWorker.
type workerOptions struct {
	role  string
	runID int64
	// stop: claim nothing more once it ends. work: the context of the work
	// itself; cancelling it cancels checks in flight.
	stop, work context.Context
}

// newWorker registers an instance for this process. Start it with start
// once a command's run is known; close it with shutdown.
func newWorker(ctx context.Context, d *Deps, o workerOptions) (*Worker, error) {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	perMirror := max(d.Config.Checks.PerMirrorConcurrency, 1)
	w := &Worker{
		d: d, id: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b)),
		vantage: d.Config.Vantage, role: o.role, runID: o.runID,
		lease: d.Config.Cluster.Lease.D(), poll: d.Config.Cluster.Poll.D(),
		// A process holds only as many mirrors as it can keep busy, so
		// that the others find work too.
		slots:   max(1, (d.Config.Checks.Concurrency+perMirror-1)/perMirror),
		global:  semaphore.NewWeighted(int64(max(d.Config.Checks.Concurrency, 1))),
		stop:    o.stop,
		wakeCh:  make(chan struct{}, 1),
		held:    map[store.WorkKey]context.CancelFunc{},
		runs:    map[int64]*runWork{},
		judging: map[int64]bool{},
		changed: make(chan struct{}),
	}
	if w.lease <= 0 {
		w.lease = 30 * time.Second
	}
	if w.poll <= 0 {
		w.poll = 5 * time.Second
	}
	w.log = d.Logger.With("instance", w.id)
	w.work, w.cancelWork = context.WithCancel(o.work)
	if err := d.Store.RegisterInstance(ctx, store.Instance{ID: w.id, Vantage: w.vantage, Role: w.role}); err != nil {
		w.cancelWork()
		return nil, err
	}
	w.rec = NewRecorder(d.Store, w.log)
	return w, nil
}

// start begins claiming: of run runID only, when not 0.
func (w *Worker) start(runID int64) {
	if runID != 0 {
		w.runID = runID
	}
	bg, quit := context.WithCancel(context.WithoutCancel(w.work))
	w.quit = quit
	w.loops.Add(3)
	go func() { defer w.loops.Done(); w.heartbeat(bg) }()
	go func() { defer w.loops.Done(); w.listen(bg) }()
	go func() { defer w.loops.Done(); w.claimLoop() }()
}

// shutdown waits for the claim loop to end (stop must have ended) and for
// the work in flight, cancelling it after grace (with grace < 0, when the
// work's context ends), writes every completed
// check, gives back unfinished rows and records the instance stopped.
func (w *Worker) shutdown(grace time.Duration) {
	done := make(chan struct{})
	go func() { w.rows.Wait(); close(done) }()
	if grace < 0 {
		<-done // the work's own context bounds it
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
	if err := w.d.Store.StopInstance(ctx, w.id); err != nil {
		w.log.Warn("could not record this instance stopped; others take over its work after the lease", "err", err)
	}
}

// wake makes the claim loop look for work now.
func (w *Worker) wake() {
	select {
	case w.wakeCh <- struct{}{}:
	default:
	}
}

// changes returns a channel closed at the next local end of a row or run,
// or the next notification of work on the database.
func (w *Worker) changes() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

func (w *Worker) signal() {
	w.mu.Lock()
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
	w.wake()
}

func (w *Worker) claimLoop() {
	t := time.NewTicker(w.poll)
	defer t.Stop()
	for w.stop.Err() == nil && w.work.Err() == nil {
		w.claim()
		w.tidy()
		select {
		case <-w.wakeCh:
		case <-t.C:
		case <-w.stop.Done():
		case <-w.work.Done():
		}
	}
}

// free is how many more rows the worker can take.
func (w *Worker) free() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.slots - len(w.held)
}

// claim claims as many rows as there are free slots and starts them.
func (w *Worker) claim() {
	free := w.free()
	if free <= 0 {
		return
	}
	claims, err := w.d.Store.ClaimWork(w.work, w.id, w.vantage, w.runID, free, w.lease)
	if err != nil {
		if w.work.Err() == nil {
			w.log.Warn("could not claim work; retrying", "err", err)
		}
		return
	}
	w.begin(claims)
}

// adopt hands the worker a run it created: what it prepared to do the
// run's rows (so that workers on this process need not read it again) and
// the rows it claimed when creating it.
func (w *Worker) adopt(runID int64, rw *runWork, claims []store.Claim) {
	w.mu.Lock()
	w.runs[runID] = rw
	w.mu.Unlock()
	w.begin(claims)
	w.wake()
}

// begin starts work on claimed rows.
func (w *Worker) begin(claims []store.Claim) {
	for _, c := range claims {
		ctx, cancel := context.WithCancel(w.work)
		w.mu.Lock()
		w.held[c.WorkKey] = cancel
		w.mu.Unlock()
		w.rows.Add(1)
		go func() {
			defer w.rows.Done()
			defer cancel()
			w.do(ctx, c)
		}()
	}
}

// do works one claimed row and records what it found, or gives the row
// back when it could not finish it.
func (w *Worker) do(ctx context.Context, c store.Claim) {
	defer func() {
		w.mu.Lock()
		delete(w.held, c.WorkKey)
		w.mu.Unlock()
		w.signal()
	}()
	log := w.log.With("run", c.RunID, "mirror_id", c.MirrorID)
	if c.Claims > 1 {
		log.Info("taking over work an instance gave back or left", "claims", c.Claims)
	}
	rw, err := w.prepare(ctx, c)
	var done *store.WorkDone
	if err == nil {
		if rw.sweep != nil {
			done = rw.sweep.row(ctx, c)
		} else {
			done = rw.prime.row(ctx, c)
		}
	} else if ctx.Err() == nil {
		log.Error("could not prepare the run's work", "err", err)
	}
	// Checks first, then the row: a row done has its checks stored.
	if done != nil {
		if err := w.rec.Sync(ctx); err != nil {
			done = nil
		}
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if done == nil {
		err := retryDB(bg, log, "giving back unfinished work", 0, func() error {
			return w.d.Store.GiveBack(bg, c.WorkKey, w.id)
		})
		if err != nil {
			log.Warn("could not give back unfinished work; the heartbeat does once the database answers", "err", err)
		}
		return
	}
	done.WorkKey, done.Instance, done.Vantage = c.WorkKey, w.id, w.vantage
	ok, err := completeRetrying(bg, w.d, log, *done)
	switch {
	case err != nil:
		log.Error("could not record finished work; it is taken over after the lease", "err", err)
	case !ok:
		log.Warn("finished work that another instance had taken over: its result is dropped")
	}
}

// completeRetrying records finished work, retrying through a passing
// database outage until ctx ends.
func completeRetrying(ctx context.Context, d *Deps, log *slog.Logger, w store.WorkDone) (ok bool, err error) {
	err = retryDB(ctx, log, "recording finished work", 0, func() error {
		ok, err = d.Store.CompleteWork(ctx, w)
		return err
	})
	return ok, err
}

// prepare returns what the worker needs to do rows of c's run, built once
// per run.
func (w *Worker) prepare(ctx context.Context, c store.Claim) (*runWork, error) {
	w.mu.Lock()
	rw := w.runs[c.RunID]
	w.mu.Unlock()
	if rw != nil {
		return rw, nil
	}
	rw = &runWork{}
	var err error
	run := store.Run{ID: c.RunID, Kind: c.Kind, StartedAt: c.StartedAt}
	switch c.Kind {
	case store.RunPrime:
		rw.prime, err = preparePrime(ctx, w, run, c.Params)
	default:
		rw.sweep, err = prepareSweep(ctx, w, run, c.Params)
	}
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if have := w.runs[c.RunID]; have != nil {
		return have, nil
	}
	w.runs[c.RunID] = rw
	return rw, nil
}

// tidy, at most every third of a lease, forgets vantage points that left,
// drops prepared runs that ended, closes runs nobody can finish, and
// judges runs whose work is done.
func (w *Worker) tidy() {
	if w.stop.Err() != nil {
		return
	}
	ctx := w.work
	now := time.Now()
	w.mu.Lock()
	due := now.Sub(w.lastTidy) >= w.lease/3
	if due {
		w.lastTidy = now
	}
	w.mu.Unlock()
	if due {
		if _, err := w.d.Store.ForgetGoneVantages(ctx, w.lease); err != nil && ctx.Err() == nil {
			w.log.Warn("could not forget vantage points that left", "err", err)
		}
		if w.role == store.RoleDaemon {
			if n, err := w.d.Store.RunsWithoutWorkers(ctx, w.lease); err == nil && n > 0 {
				w.log.Warn("closed runs every sentry working on had left", "runs", n)
			}
		}
		w.forgetEndedRuns(ctx)
	}
	claims, err := w.d.Store.ClaimJudging(ctx, w.id, w.runID, w.lease)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("could not look for runs to judge", "err", err)
		}
		return
	}
	for _, j := range claims {
		w.mu.Lock()
		busy := w.judging[j.ID]
		w.judging[j.ID] = true
		w.mu.Unlock()
		if busy {
			continue
		}
		w.rows.Add(1)
		go func() {
			defer w.rows.Done()
			w.judge(j)
			w.mu.Lock()
			delete(w.judging, j.ID)
			delete(w.runs, j.ID)
			w.mu.Unlock()
			w.signal()
		}()
	}
}

func (w *Worker) forgetEndedRuns(ctx context.Context) {
	w.mu.Lock()
	ids := make([]int64, 0, len(w.runs))
	for id := range w.runs {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	for _, id := range ids {
		st, err := w.d.Store.RunStatus(ctx, id)
		if err != nil || !st.Finished {
			continue
		}
		w.mu.Lock()
		delete(w.runs, id)
		w.mu.Unlock()
	}
}

// judge does a run's last step: the guard, quorum and marks of a sweep,
// the guard over the mirrors a prime found down.
func (w *Worker) judge(j store.JudgeClaim) {
	// Cancelled only when the work in flight is (shutdown after the
	// grace): an unfinished judgement is redone by another instance once
	// its lease runs out.
	ctx := w.work
	log := w.log.With("run", j.ID, "kind", j.Kind)
	var err error
	switch j.Kind {
	case store.RunPrime:
		err = judgePrime(ctx, w, j)
	default:
		err = judgeSweep(ctx, w, j)
	}
	if err != nil {
		log.Error("could not judge the run; another instance retries after the lease", "err", err)
	}
}

// heartbeat keeps the instance alive and its leases renewed; work rows
// it no longer holds (it was silent too long, and another took them over)
// are cancelled here.
func (w *Worker) heartbeat(ctx context.Context) {
	t := time.NewTicker(w.lease / 3)
	defer t.Stop()
	var orphans map[store.WorkKey]bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		claimed, err := w.d.Store.Heartbeat(ctx, w.id, w.lease)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("heartbeat failed; claims are lost if this lasts a lease", "lease", w.lease, "err", err)
			}
			continue
		}
		orphans = w.reconcile(ctx, claimed, orphans)
	}
}

// reconcile compares the rows the database says this instance holds with
// those it works on. A row worked on but no longer held was taken over
// (this instance was silent for longer than a lease): its work is
// cancelled. A row held but not worked on (its give-back failed during an
// outage) is given back once seen so on two heartbeats in a row, so that
// a claim still being started is left alone. It returns this beat's
// orphans.
func (w *Worker) reconcile(ctx context.Context, claimed []store.WorkKey, lastOrphans map[store.WorkKey]bool) map[store.WorkKey]bool {
	still := make(map[store.WorkKey]bool, len(claimed))
	for _, k := range claimed {
		still[k] = true
	}
	orphans := map[store.WorkKey]bool{}
	w.mu.Lock()
	for k, cancel := range w.held {
		if !still[k] {
			w.log.Warn("work taken over by another instance; dropping it", "run", k.RunID, "mirror_id", k.MirrorID)
			cancel()
		}
	}
	for _, k := range claimed {
		if _, ok := w.held[k]; !ok {
			orphans[k] = true
		}
	}
	w.mu.Unlock()
	for k := range orphans {
		if !lastOrphans[k] {
			continue
		}
		if err := w.d.Store.GiveBack(ctx, k, w.id); err != nil {
			w.log.Warn("could not give back work", "run", k.RunID, "mirror_id", k.MirrorID, "err", err)
			continue
		}
		delete(orphans, k)
		w.wake()
	}
	return orphans
}

// listen wakes the claim loop, and whoever waits for a run to end, on
// every notification of new, released or finished work, reconnecting
// after errors.
func (w *Worker) listen(ctx context.Context) {
	wait := time.Second
	for ctx.Err() == nil {
		err := w.d.Store.Listen(ctx, w.signal)
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

// waitRun waits until run runID has ended and returns its status. It
// returns early, with ctx's error or errStopped, when ctx or stop end.
func (w *Worker) waitRun(ctx, stop context.Context, runID int64) (store.RunStatus, error) {
	t := time.NewTicker(w.poll)
	defer t.Stop()
	for {
		ch := w.changes()
		st, err := w.d.Store.RunStatus(ctx, runID)
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
			return st, errStopped
		}
	}
}

var errStopped = errors.New("stopped before the run ended")
