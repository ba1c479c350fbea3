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

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/record"
)

// Instance roles: a daemon (`sentry run`) works every run; a command
// (`sentry prime`, `sentry sweep`) works only the run it started or
// joined.
const (
	RoleDaemon  = "daemon"
	RoleCommand = "command"
)

// Worker is one process's share of the work on the database: it registers
// the process as an instance (with its vantage point), claims rows under a
// lease, works them through their jobs, renews its leases, stops its own
// work when it cannot (self-fencing), and judges runs whose rows are all
// done.
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

	wakeCh chan struct{}
	inWork sync.WaitGroup // rows and judgings in flight
	// trackMu orders the start of work (inWork.Add) with Shutdown's wait:
	// once closing is set, no work starts.
	trackMu sync.Mutex
	closing bool
	loops   sync.WaitGroup // claim loop, heartbeat, watchdog, listener

	// leaseMu guards what the worker holds: its rows, their slots
	// reserved by claims on their way to the database, its judgings, and
	// the orphans the last heartbeat found. It is never held while the
	// database is asked.
	leaseMu  sync.Mutex
	held     map[WorkKey]*Row
	reserved int
	judging  map[int64]*judging
	orphans  []heldLease

	mu       sync.Mutex
	tasks    map[int64]Task // prepared runs
	changed  chan struct{}  // closed and replaced whenever a row or run ends, or work is announced
	lastTidy time.Time
}

// judging is a run this worker judges.
type judging struct {
	fence   judgeFence
	renewed atomic.Int64 // since epoch (monotonic), see now()
	cancel  context.CancelFunc
}

// epoch is the origin of the monotonic times workers keep in atomics.
var epoch = time.Now()

// mono is the monotonic time since epoch: unaffected by changes of the
// wall clock, and running on while the process is stopped (SIGSTOP).
func mono() int64 { return int64(time.Since(epoch)) }

// NewWorker registers an instance of role for this process. stop ends its
// claiming; work is the context of the work itself (cancelling it cancels
// checks in flight). Start it with Start; close it with Shutdown.
func (e *Engine) NewWorker(ctx context.Context, role string, stop, work context.Context) (*Worker, error) {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	w := &Worker{
		e: e, id: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b)), role: role,
		stop: stop, wakeCh: make(chan struct{}, 1),
		held: map[WorkKey]*Row{}, judging: map[int64]*judging{}, tasks: map[int64]Task{}, changed: make(chan struct{}),
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
	w.trackMu.Lock()
	w.closing = true
	w.trackMu.Unlock()
	done := make(chan struct{})
	go func() { w.inWork.Wait(); close(done) }()
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
	t := time.NewTicker(w.e.opts.Poll)
	defer t.Stop()
	for w.stop.Err() == nil && w.work.Err() == nil {
		rows, err := w.e.claimOnce(w.work, w)
		if err != nil && w.work.Err() == nil {
			w.log.Warn("could not claim work; retrying", "err", err)
		}
		w.begin(rows)
		w.tidy()
		select {
		case <-w.wakeCh:
		case <-t.C:
		case <-w.stop.Done():
		case <-w.work.Done():
		}
	}
}

// claiming runs claim (which claims rows in the database) with the number
// of free slots, reserved meanwhile, and registers the rows it returns as
// held: a worker never holds more rows than its slots, whoever claims.
func (w *Worker) claiming(claim func(free int) ([]*Row, error)) ([]*Row, error) {
	w.leaseMu.Lock()
	free := max(w.e.opts.Slots-len(w.held)-w.reserved, 0)
	w.reserved += free
	w.leaseMu.Unlock()
	at := mono() // the leases count from before the claim was sent
	rows, err := claim(free)
	w.leaseMu.Lock()
	defer w.leaseMu.Unlock()
	w.reserved -= free
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		k := WorkKey{r.Run.ID, r.MirrorID}
		if old := w.held[k]; old != nil {
			// Cannot happen (a worker never claims back its own row);
			// if it did, the older copy of the work yields.
			old.cancel()
		}
		r.renewed.Store(at)
		w.held[k] = r
	}
	return rows, nil
}

// track counts one piece of work starting (inWork), unless Shutdown has
// begun waiting: then it reports false and the work must not start (a row
// not started is given back by Shutdown; a judgement's lease lapses).
func (w *Worker) track() bool {
	w.trackMu.Lock()
	defer w.trackMu.Unlock()
	if w.closing {
		return false
	}
	w.inWork.Add(1)
	return true
}

// begin starts work on claimed rows.
func (w *Worker) begin(rows []*Row) {
	for _, r := range rows {
		if !w.track() {
			return
		}
		ctx, cancel := w.rowContext(r)
		go func() {
			defer w.inWork.Done()
			defer cancel()
			w.do(ctx, r)
		}()
	}
}

// rowContext is the context a row is worked with: cancelled when the row
// is no longer this worker's, and refusing every request once the row's
// lease may have lapsed, even before the watchdog cancels it (a process
// resumed after a pause sends nothing before it notices).
func (w *Worker) rowContext(r *Row) (context.Context, context.CancelFunc) {
	rowCtx, cancel := context.WithCancel(w.work)
	w.leaseMu.Lock()
	r.cancel = cancel
	w.leaseMu.Unlock()
	return checks.WithGuard(rowCtx, func() error {
		if !r.valid() {
			return errLapsed
		}
		return context.Cause(rowCtx)
	}), cancel
}

// valid reports whether the row's lease is still to be worked on: renewed
// within validFor.
func (r *Row) valid() bool {
	return time.Duration(mono()-r.renewed.Load()) < validFor(r.lease)
}

// do works one claimed row and records what it found, or gives the row
// back when it could not finish it.
func (w *Worker) do(ctx context.Context, r *Row) {
	k := WorkKey{r.Run.ID, r.MirrorID}
	defer func() {
		w.leaseMu.Lock()
		if w.held[k] == r {
			delete(w.held, k)
		}
		w.leaseMu.Unlock()
		w.signal()
	}()
	log := w.log.With("run", r.Run.ID, "mirror_id", r.MirrorID)
	if r.Claims > 1 {
		log.Info("taking over work an instance gave back or left", "claims", r.Claims)
	}
	var res Result
	ok := false
	task, err := w.prepare(ctx, r.Run)
	if err == nil {
		res, ok = task.Work(ctx, r)
	} else if ctx.Err() == nil {
		log.Error("could not prepare the run's work", "err", err)
	}
	w.leaseMu.Lock()
	r.finishing = true
	w.leaseMu.Unlock()
	bg, cancel := detached(ctx, 30*time.Second)
	defer cancel()
	// Checks first, then the row: a row done has its checks stored. The
	// row's fence decides whether either still counts.
	if ok {
		if err := w.rec.SyncMirror(bg, r.MirrorID); err != nil {
			ok = false
		}
	}
	if !ok {
		err := Retry(bg, log, "giving back unfinished work", 0, func() error { return w.e.giveBack(bg, r.fence, w.id) })
		if err != nil {
			log.Warn("could not give back unfinished work; the heartbeat does once the database answers", "err", err)
		}
		return
	}
	var done bool
	err = Retry(bg, log, "recording finished work", 0, func() (err error) {
		done, err = w.e.complete(bg, r.fence, w.id, res)
		return err
	})
	switch {
	case err != nil:
		log.Error("could not record finished work; it is taken over after the lease", "err", err)
	case !done:
		log.Warn("finished work that another instance had taken over: its result is dropped")
	}
}

// prepare returns what the worker needs to do rows of run, built once per
// run.
func (w *Worker) prepare(ctx context.Context, run Run) (Task, error) {
	w.mu.Lock()
	t := w.tasks[run.ID]
	w.mu.Unlock()
	if t != nil {
		return t, nil
	}
	job, err := w.e.job(run.Kind)
	if err != nil {
		return nil, err
	}
	if t, err = job.Prepare(ctx, run); err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if have := w.tasks[run.ID]; have != nil {
		return have, nil
	}
	w.tasks[run.ID] = t
	return t, nil
}

// heartbeat renews the worker's leases every third of a lease.
func (w *Worker) heartbeat(ctx context.Context) {
	t := time.NewTicker(w.e.opts.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.beat(ctx)
	}
}

// beat is one heartbeat: it sends the leases the worker works on; those
// the database renewed count as renewed from the moment the beat was sent;
// the others were taken over, and their work is cancelled, under the
// worker's lock, before anything could count them valid again.
func (w *Worker) beat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, w.e.opts.Lease/3)
	defer cancel()
	w.leaseMu.Lock()
	sent := mono()
	var held []heldLease
	for _, r := range w.held {
		held = append(held, heldLease{run: r.Run.ID, mirror: r.MirrorID, token: r.Claims})
	}
	for _, j := range w.judging {
		held = append(held, heldLease{run: j.fence.run, token: j.fence.token})
	}
	back := w.orphans
	w.orphans = nil
	w.leaseMu.Unlock()
	renewed, orphans, err := w.e.renew(ctx, w.id, held, back)
	if err != nil {
		if w.work.Err() == nil {
			w.log.Warn("heartbeat failed; work stops by itself if this lasts two thirds of a lease", "lease", w.e.opts.Lease, "err", err)
		}
		return
	}
	w.leaseMu.Lock()
	defer w.leaseMu.Unlock()
	asked := make(map[heldLease]bool, len(held))
	for _, h := range held {
		asked[h] = true
	}
	for k, r := range w.held {
		h := heldLease{run: k.RunID, mirror: k.MirrorID, token: r.Claims}
		switch {
		case renewed[h]:
			r.renewed.Store(sent)
		case asked[h] && !r.finishing:
			w.log.Warn("work taken over by another instance; dropping it", "run", k.RunID, "mirror_id", k.MirrorID)
			r.cancel()
		}
	}
	for id, j := range w.judging {
		h := heldLease{run: id, token: j.fence.token}
		switch {
		case renewed[h]:
			j.renewed.Store(sent)
		case asked[h]:
			w.log.Warn("judging taken over by another instance; dropping it", "run", id)
			j.cancel()
		}
	}
	// What the database says is this worker's and it does not work on is
	// given back at the next beat if it is still so then (a claim made
	// while this beat was on its way is held by then).
	for _, o := range orphans {
		if _, held := w.held[WorkKey{o.run, o.mirror}]; !held {
			w.orphans = append(w.orphans, o)
		}
	}
	if len(back) > 0 {
		w.wake()
	}
}

// watchdog stops the work on rows and judgings whose lease was not
// renewed in time (self-fencing): their contexts are cancelled, so that
// long transfers stop too, not only new requests.
func (w *Worker) watchdog(ctx context.Context) {
	t := time.NewTicker(max(w.e.opts.Lease/12, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.leaseMu.Lock()
		for k, r := range w.held {
			if !r.finishing && !r.valid() && r.cancel != nil {
				w.log.Warn("lease not renewed in time: stopping work on the mirror before another sentry takes it over",
					"run", k.RunID, "mirror_id", k.MirrorID)
				r.finishing = true
				r.cancel()
			}
		}
		for id, j := range w.judging {
			if time.Duration(mono()-j.renewed.Load()) >= validFor(w.e.opts.Lease) {
				w.log.Warn("judging lease not renewed in time: stopping the judgement", "run", id)
				j.cancel()
			}
		}
		w.leaseMu.Unlock()
	}
}

// tidy, at most every third of a lease, forgets vantage points that left,
// drops prepared runs that ended and closes runs nobody can finish; every
// time, it looks for runs to judge.
func (w *Worker) tidy() {
	if w.stop.Err() != nil {
		return
	}
	ctx := w.work
	now := time.Now()
	w.mu.Lock()
	due := now.Sub(w.lastTidy) >= w.e.opts.Lease/3
	if due {
		w.lastTidy = now
	}
	w.mu.Unlock()
	if due {
		if _, err := w.e.forgetGoneVantages(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("could not forget vantage points that left", "err", err)
		}
		if w.role == RoleDaemon {
			if n, err := w.e.CloseAbandoned(ctx); err == nil && n > 0 {
				w.log.Warn("closed runs every sentry working on had left", "runs", n)
			}
		}
		w.forgetEndedTasks(ctx)
	}
	w.judgeDue(ctx)
}

// judgeDue claims the runs due for judging and judges each in a goroutine
// of its own.
func (w *Worker) judgeDue(ctx context.Context) {
	at := mono()
	claims, err := w.e.claimJudging(ctx, w)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("could not look for runs to judge", "err", err)
		}
		return
	}
	w.leaseMu.Lock()
	type started struct {
		jc  judgeClaim
		ctx context.Context
	}
	var go_ []started
	for _, jc := range claims {
		jctx, cancel := context.WithCancel(w.work)
		j := &judging{fence: jc.fence, cancel: cancel}
		j.renewed.Store(at)
		if old := w.judging[jc.run.ID]; old != nil {
			old.cancel()
		}
		w.judging[jc.run.ID] = j
		go_ = append(go_, started{jc, jctx})
	}
	w.leaseMu.Unlock()
	for _, s := range go_ {
		if !w.track() {
			w.leaseMu.Lock()
			if j := w.judging[s.jc.run.ID]; j != nil && j.fence == s.jc.fence {
				j.cancel()
				delete(w.judging, s.jc.run.ID)
			}
			w.leaseMu.Unlock()
			continue
		}
		go func() {
			defer w.inWork.Done()
			w.e.judge(s.ctx, w, s.jc)
			w.leaseMu.Lock()
			if j := w.judging[s.jc.run.ID]; j != nil && j.fence == s.jc.fence {
				j.cancel()
				delete(w.judging, s.jc.run.ID)
			}
			w.leaseMu.Unlock()
			w.mu.Lock()
			delete(w.tasks, s.jc.run.ID)
			w.mu.Unlock()
			w.signal()
		}()
	}
}

func (w *Worker) forgetEndedTasks(ctx context.Context) {
	w.mu.Lock()
	ids := make([]int64, 0, len(w.tasks))
	for id := range w.tasks {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	for _, id := range ids {
		st, err := w.e.status(ctx, id)
		if err != nil || !st.Finished {
			continue
		}
		w.mu.Lock()
		delete(w.tasks, id)
		w.mu.Unlock()
	}
}

// listen wakes the claim loop, and whoever waits for a run to end, on
// every notification of work, reconnecting after errors.
func (w *Worker) listen(ctx context.Context) {
	wait := time.Second
	for ctx.Err() == nil {
		err := w.e.listen(ctx, w.signal)
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
		ch := w.changes()
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
