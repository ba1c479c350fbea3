package sentry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/checks/safetext"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/hook"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/signature"
	"github.com/mirrorsentry/sentry/sentry/store"
	"github.com/mirrorsentry/sentry/sentry/sweep"
)

// DaemonOptions are the knobs of RunDaemon beyond the configuration.
type DaemonOptions struct {
	// Ready, when set, is called with the HTTP server's address once it
	// listens (tests listen on port 0).
	Ready func(addr string)
	// Mux, when set, receives the daemon's HTTP routes; other packages
	// (status page, metrics) may add theirs. nil: a new mux.
	Mux *http.ServeMux
	// PrimeDone, when set, is called when a prime started by the hook
	// ends, with its run id and outcome (or error).
	PrimeDone func(runID int64, outcome string, err error)
}

// Daemon is `sentry run`: cron-scheduled sweeps, the release hook and the
// health endpoint, and the hourly prune (retention.go). RunDaemon makes
// it and runs it.
type Daemon struct {
	d    *Deps
	opts DaemonOptions
	log  *slog.Logger

	// soft ends when the daemon is asked to stop: nothing new starts.
	// hard ends shutdown_grace later: work in flight is cancelled.
	soft, hard context.Context
	cancelHard context.CancelFunc

	sweepMu sync.Mutex     // one sweep at a time in this process
	jobs    sync.WaitGroup // sweeps and primes in flight
	engine  *engine.Engine
	worker  *engine.Worker // this process's share of every run
}

// RunDaemon runs the daemon until ctx ends (SIGTERM, SIGINT), then shuts
// down: it stops scheduling and answering hooks, lets running checks go on
// for shutdown_grace, cancels what is left, writes every completed check,
// and returns nil. It returns an error when it cannot start (schema not
// migrated, the listen address taken, a bad schedule).
func RunDaemon(ctx context.Context, d *Deps, opts DaemonOptions) error {
	dm, err := newDaemon(ctx, d, opts)
	if err != nil {
		return err
	}
	defer dm.cancelHard()
	started := false
	defer func() {
		if !started {
			dm.worker.Shutdown(0)
		}
	}()
	sched, err := dm.schedule()
	if err != nil {
		return err
	}
	srv, ln, err := dm.server()
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	dm.log.Info("sentry run started", "listen", ln.Addr().String(), "sweep", d.Config.Schedule.Sweep,
		"deep_sweep", d.Config.Schedule.DeepSweep, "vantage", d.Config.Vantage)
	if opts.Ready != nil {
		opts.Ready(ln.Addr().String())
	}
	dm.worker.Start()
	started = true
	sched.Start()
	dm.jobs.Add(1)
	go func() {
		defer dm.jobs.Done()
		prune(dm.soft, dm.d.Store, Retention(dm.d.Config), dm.log)
	}()

	runErr := dm.wait(ctx, serveErr)
	dm.stop(sched, srv)
	return runErr
}

// newDaemon checks that the daemon can start (the schema migrated, the
// mirrors' settings usable) and makes it: its two contexts (soft is ctx;
// hard, which the caller cancels, ends later) and this process's engine
// worker, not started yet.
func newDaemon(ctx context.Context, d *Deps, opts DaemonOptions) (*Daemon, error) {
	if err := d.Store.RequireSchema(ctx); err != nil {
		return nil, err
	}
	if err := CheckSettings(ctx, d); err != nil {
		return nil, err
	}
	dm := &Daemon{d: d, opts: opts, log: d.Logger.With("component", "daemon")}
	dm.soft = ctx
	dm.hard, dm.cancelHard = context.WithCancel(context.WithoutCancel(ctx))
	eng, err := NewEngine(d)
	if err != nil {
		dm.cancelHard()
		return nil, err
	}
	w, err := eng.NewWorker(ctx, engine.RoleDaemon, dm.soft, dm.hard)
	if err != nil {
		dm.cancelHard()
		return nil, err
	}
	dm.engine, dm.worker = eng, w
	return dm, nil
}

// schedule is the cron schedule of the sweeps (schedule.sweep,
// schedule.deep_sweep), not started; an error names a spec that does not
// parse.
func (dm *Daemon) schedule() (*cron.Cron, error) {
	sched := cron.New(cron.WithLocation(time.UTC), cron.WithLogger(cronLogger{dm.log}))
	for _, j := range []struct {
		name, spec string
		deep       bool
	}{
		{"sweep", dm.d.Config.Schedule.Sweep, false},
		{"deep_sweep", dm.d.Config.Schedule.DeepSweep, true},
	} {
		spec, err := cron.ParseStandard(j.spec)
		if err != nil {
			return nil, fmt.Errorf("schedule for %s %q: %w", j.name, j.spec, err)
		}
		// SkipIfStillRunning before Recover: a panicking sweep is
		// recovered inside the skip guard, which is then released.
		jl := cronLogger{dm.log.With("job", j.name)}
		job := cron.NewChain(cron.SkipIfStillRunning(jl), cron.Recover(jl)).
			Then(cron.FuncJob(func() { dm.sweep(j.name, spec, j.deep) }))
		sched.Schedule(spec, job)
	}
	return sched, nil
}

// server is the daemon's HTTP server with its routes (on opts.Mux when
// set, beside other packages' routes), and its listener on http.listen.
func (dm *Daemon) server() (*http.Server, net.Listener, error) {
	mux := dm.opts.Mux
	if mux == nil {
		mux = http.NewServeMux()
	}
	if err := dm.routes(mux); err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", dm.d.Config.HTTP.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("http.listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(dm.log.Handler(), slog.LevelWarn)}
	return srv, ln, nil
}

// wait waits until the daemon is asked to stop (ctx ends) or its HTTP
// server fails; it returns the server's error.
func (dm *Daemon) wait(ctx context.Context, serveErr <-chan error) error {
	select {
	case <-ctx.Done():
		dm.log.Info("stopping: no new sweeps or primes; running checks have the grace to finish",
			"grace", dm.d.Config.ShutdownGrace.D())
		return nil
	case err := <-serveErr:
		dm.log.Error("http server failed; stopping", "err", err)
		return fmt.Errorf("http server: %w", err)
	}
}

// stop stops the schedule and the HTTP server, then drains the work in
// flight.
func (dm *Daemon) stop(sched *cron.Cron, srv *http.Server) {
	stopped := sched.Stop()
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(shutCtx)
	cancel()
	dm.drain(stopped.Done())
	dm.log.Info("sentry run stopped")
}

// drain waits for the scheduled jobs to notice the stop, then for the work
// in flight: shutdown_grace for it to end by itself, then cancels it and
// waits for what it completed to be recorded. Runs that no other sentry
// can continue are closed as interrupted.
func (dm *Daemon) drain(cronDone <-chan struct{}) {
	<-cronDone
	dm.jobs.Wait()
	dm.worker.Shutdown(dm.d.Config.ShutdownGrace.D())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n, err := dm.engine.CloseAbandoned(ctx); err != nil {
		dm.log.Warn("could not close the runs no sentry is left to finish", "err", err)
	} else if n > 0 {
		dm.log.Info("closed as interrupted the runs no other sentry is left to finish", "runs", n)
	}
}

// routes adds the daemon's routes to mux: the release hook
// (/hooks/release) and the health endpoint (/healthz).
func (dm *Daemon) routes(mux *http.ServeMux) error {
	releaseHook, err := hook.NewReleaseHandler(hook.Options{
		Secret:       []byte(dm.d.Config.Hook.Secret),
		ReplayWindow: dm.d.Config.Hook.ReplayWindow.D(),
		Start:        dm.startPrime,
		Validate:     release.ValidateName,
		Logger:       dm.log,
	})
	if err != nil {
		return err
	}
	mux.Handle("/hooks/release", releaseHook)
	mux.Handle("/healthz", hook.NewHealthHandler(map[string]hook.HealthChecker{
		"database": func(ctx context.Context) error {
			// The endpoint is unauthenticated: say that, not where.
			if err := dm.d.Store.Ping(ctx); err != nil {
				return errors.New("database unreachable")
			}
			return nil
		},
		"daemon": func(context.Context) error {
			if dm.soft.Err() != nil {
				return errors.New("stopping")
			}
			return nil
		},
	}, 3*time.Second))
	return nil
}

// sweep is a scheduled job: one shared sweep, unless another is running in
// this process or on this database, or another process already started
// this slot (this process's worker helps with that one anyway). A deep
// sweep due while a light one runs waits for it instead of being skipped.
func (dm *Daemon) sweep(name string, spec cron.Schedule, deep bool) {
	log := dm.log.With("job", name)
	if dm.soft.Err() != nil {
		return
	}
	if deep {
		// A deep sweep is not lost to a light one: it waits its turn.
		if !dm.sweepMu.TryLock() {
			log.Info("deep sweep due while a sweep runs in this process: it runs after it")
			dm.sweepMu.Lock()
		}
	} else if !dm.sweepMu.TryLock() {
		log.Warn("sweep skipped: another sweep is running in this process")
		return
	}
	defer dm.sweepMu.Unlock()
	if dm.soft.Err() != nil {
		return
	}
	dm.jobs.Add(1)
	defer dm.jobs.Done()
	slot := scheduledSlot(spec, time.Now())
	rep, err := Sweep(dm.hard, dm.d, SweepOptions{Deep: deep, Stop: dm.soft, Slot: slot, Queue: deep,
		Engine: dm.engine, Worker: dm.worker})
	switch {
	case errors.Is(err, engine.ErrSlotTaken):
		log.Info("sweep started by another sentry; this one helps", "slot", slot)
	case errors.Is(err, sweep.ErrRunning):
		log.Warn("sweep skipped: the previous sweep is still running", "slot", slot, "err", err)
	case errors.Is(err, engine.ErrStopped):
		log.Info("stopping before the sweep ended; other sentries finish it", "slot", slot)
	case err != nil:
		log.Error("sweep could not be done", "err", err)
	default:
		log.Info("sweep done", "run", rep.RunID, "outcome", rep.Outcome)
	}
}

// startPrime is the release hook's Starter: it records the run, answers
// with its id and primes in the background, with every sentry on the
// database. A prime of the release already running (started by any
// sentry, or by `sentry prime`) is refused with its id (409).
func (dm *Daemon) startPrime(ctx context.Context, rel string) (int64, error) {
	if dm.soft.Err() != nil {
		return 0, errors.New("sentry is stopping")
	}
	if err := dm.masterHas(ctx, rel); err != nil {
		return 0, err
	}
	type answer struct {
		id  int64
		err error
	}
	answered := make(chan answer, 1)
	var once sync.Once
	answer1 := func(a answer) { once.Do(func() { answered <- a }) }
	dm.jobs.Add(1)
	go func() {
		defer dm.jobs.Done()
		rep, err := Prime(dm.hard, dm.d, PrimeOptions{Release: rel, Refuse: true, Engine: dm.engine, Worker: dm.worker,
			Stop: dm.soft, Started: func(run engine.Run, _ bool) { answer1(answer{id: run.ID}) }})
		var running engine.RunningError
		if errors.As(err, &running) {
			answer1(answer{err: hook.BusyError{RunID: running.RunID}})
			return
		}
		answer1(answer{err: err}) // failed before the run was recorded
		log := dm.log.With("release", rel)
		outcome, runID := store.OutcomeFailed, int64(0)
		if err != nil {
			log.Error("prime from the hook could not be done", "err", err)
		} else {
			outcome, runID = rep.Outcome, rep.RunID
			log.Info("prime from the hook done", "run", rep.RunID, "outcome", rep.Outcome)
		}
		if dm.opts.PrimeDone != nil {
			dm.opts.PrimeDone(runID, outcome, err)
		}
	}()
	select {
	case a := <-answered:
		return a.id, a.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// masterHas reads and parses the release's manifest from the master before
// the hook answers, so that a release the master does not have starts
// nothing: 404 when the master has no manifest, 422 when what it has is no
// usable manifest or its signature is refused (a hook.RefusedError). A
// master that cannot be reached now is a plain error: 503, try again.
func (dm *Daemon) masterHas(ctx context.Context, rel string) error {
	r := &release.Resolver{Config: dm.d.Config, Store: dm.d.Store, Client: dm.d.Client}
	err := r.ReadManifest(ctx, rel)
	var me *release.ManifestError
	var se *signature.Error
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &me):
		return err
	case errors.As(err, &se):
		return hook.RefusedError{Status: http.StatusUnprocessableEntity,
			Reason: fmt.Sprintf("release %s: manifest signature refused: %s", rel, se.Msg)}
	case me.Kind == checks.KindNotFound || me.Kind == checks.KindForbidden:
		return hook.RefusedError{Status: http.StatusNotFound,
			Reason: fmt.Sprintf("release %s is not on the master: no manifest at %s (%s)", rel, safetext.URL(me.URL), me.Kind)}
	case me.Kind == checks.KindOK || me.Kind.Definitive():
		return hook.RefusedError{Status: http.StatusUnprocessableEntity,
			Reason: fmt.Sprintf("release %s: the master's manifest is unusable: %v", rel, err)}
	default:
		return fmt.Errorf("could not read the manifest of release %s from the master: %w", rel, err)
	}
}
