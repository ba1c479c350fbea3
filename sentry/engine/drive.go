package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Request asks for a run: what `sentry prime`, `sentry sweep`, the release
// hook and the daemon's schedule ask for.
type Request struct {
	// Kind is the run's job (Options.Jobs).
	Kind string
	// Params is what the job's Plan needs (a prime's release), recorded
	// with the run.
	Params any
	// Key, when set, allows one running run per key ("prime 1.5"). When
	// one is running, Join works and waits for it instead (a command);
	// without Join, Drive returns a RunningError (the release hook's
	// 409).
	Key  string
	Join bool
	// Slot, when set, is a scheduled run's slot (a scheduled sweep's):
	// one run of the kind per slot (ErrSlotTaken when another sentry
	// started it), and none while a scheduled run of the kind's group
	// (Kind.Group) runs (a GroupBusyError) — unless Queue, which waits for
	// that run to end and then starts (a deep sweep is not lost).
	Slot  time.Time
	Queue bool
	// Worker is the daemon's worker, which works every run; nil means a
	// command: Drive registers a worker of its own that works only this
	// run (and judges it) with every daemon, and stops it at the end.
	Worker *Worker
	// Stop, when it ends, stops this process's part: a daemon stops
	// waiting (the others finish the run); a command stops claiming, lets
	// its checks in flight end (until ctx ends them), and records the
	// run it started as interrupted. nil: ctx.
	Stop context.Context
	// Started, when set, is called once the run is recorded, before it
	// is planned (the release hook answers with its id).
	Started func(run Run, joined bool)
}

// Finished is a run as it ended, or as far as this process followed it.
type Finished struct {
	Run Run
	// Joined: the run was started by another request with the same key.
	Joined          bool
	Outcome, Reason string
	// Rows are the run's work rows, with what each found.
	Rows []WorkRow
}

// Drive starts a run (or joins the running one of its key), plans it,
// works it together with every sentry on the database, and waits for it to
// end: one driver for every job. It returns an error when the run could
// not be done (its plan failed: the run is recorded as failed) or this
// process stopped before the run ended (ErrStopped, for the daemon and for
// a command that joined another's run).
func (e *Engine) Drive(ctx context.Context, req Request) (*Finished, error) {
	job, err := e.job(req.Kind)
	if err != nil {
		return nil, err
	}
	stop := req.Stop
	if stop == nil {
		stop = ctx
	}
	if n, err := e.CloseAbandoned(ctx); err != nil {
		e.log.Warn("could not close the runs no sentry is left to finish", "err", err)
	} else if n > 0 {
		e.log.Warn("closed as interrupted the runs no sentry is left to finish", "runs", n)
	}
	w, own := req.Worker, req.Worker == nil
	finish := func() {}
	if own {
		wstop, cancel := context.WithCancel(stop)
		if w, err = e.NewWorker(ctx, RoleCommand, wstop, ctx); err != nil {
			cancel()
			return nil, err
		}
		var once sync.Once
		finish = func() { once.Do(func() { cancel(); w.Shutdown(-1) }) }
		defer finish()
	}
	run, joined, err := e.beginQueued(ctx, stop, w, req)
	if err != nil {
		return nil, err
	}
	if joined && !req.Join {
		return &Finished{Run: run, Joined: true}, RunningError{RunID: run.ID, Key: req.Key}
	}
	log := e.log.With("run", run.ID, "kind", run.Kind)
	if req.Started != nil {
		req.Started(run, joined)
	}
	if own {
		w.only.Store(run.ID)
	}
	if joined {
		log.Info("joining the running run", "key", req.Key)
	} else if run, err = e.planRun(ctx, w, job, run); err != nil {
		return nil, err
	}
	if own {
		// Started once the run is planned: the plan's own claims, made
		// in the transaction that records the work, take every free slot
		// (a claim loop already running could hold them for a moment),
		// so that this process starts at once and works through a
		// database outage that begins right after.
		w.Start()
	}
	st, err := w.waitRun(ctx, stop, run.ID)
	if err != nil {
		if !own || joined {
			return nil, fmt.Errorf("%w: run %d goes on with the other sentries", ErrStopped, run.ID)
		}
		// A command's own run: stop claiming, let checks in flight end
		// (ctx bounds them), and close the run. What was done is kept.
		finish()
		endCtx, cancel := detached(ctx, 2*time.Minute)
		defer cancel()
		if st, err = e.status(endCtx, run.ID); err != nil {
			return nil, err
		}
		cause := context.Cause(ctx)
		if cause == nil {
			cause = errors.New("stopped")
		}
		reason := job.Interrupted(cause, st.Total-st.Open, st.Total)
		ended, err := e.endRetrying(endCtx, run.ID, store.OutcomeInterrupted, reason)
		if err != nil {
			return nil, err
		}
		if ended {
			e.obs.RunFinished(observe.RunEvent{RunID: run.ID, Kind: run.Kind, Outcome: store.OutcomeInterrupted,
				Reason: reason, Started: run.StartedAt, Finished: time.Now()})
		}
		if st, err = e.status(endCtx, run.ID); err != nil {
			return nil, err
		}
	}
	readCtx, cancel := detached(ctx, time.Minute)
	defer cancel()
	rows, err := e.rows(readCtx, run.ID)
	if err != nil {
		return nil, err
	}
	return &Finished{Run: run, Joined: joined, Outcome: st.Outcome, Reason: st.Reason, Rows: rows}, nil
}

// beginQueued is begin, waiting its turn behind a running scheduled run
// of its group when the request queues.
func (e *Engine) beginQueued(ctx, stop context.Context, w *Worker, req Request) (Run, bool, error) {
	t := time.NewTicker(e.opts.Poll)
	defer t.Stop()
	for {
		ch := w.signals.changes()
		run, joined, err := e.begin(ctx, req, w.id)
		if !req.Queue || !errors.Is(err, ErrGroupBusy) {
			return run, joined, err
		}
		select {
		case <-ch:
		case <-t.C:
		case <-stop.Done():
			return Run{}, false, err
		case <-ctx.Done():
			return Run{}, false, err
		}
	}
}

// planRun plans a run this process started and records its work, with
// this worker's first claims; a plan that fails ends the run as failed.
func (e *Engine) planRun(ctx context.Context, w *Worker, job Job, run Run) (Run, error) {
	p, err := job.Plan(ctx, run)
	if err == nil {
		var rows []*Row
		if p.Task != nil {
			w.tasks.set(run.ID, p.Task)
		}
		if run, rows, err = e.plan(ctx, w, run, p); err == nil {
			e.log.Info("run planned", "run", run.ID, "kind", run.Kind, "mirrors", len(p.Mirrors), "claimed", len(rows))
			w.begin(rows)
			w.signals.wake()
			return run, nil
		}
	}
	endCtx, cancel := detached(ctx, 30*time.Second)
	defer cancel()
	if ended, eerr := e.endRetrying(endCtx, run.ID, store.OutcomeFailed, err.Error()); eerr != nil {
		e.log.Warn("could not record the run failed", "run", run.ID, "err", eerr)
	} else if ended {
		e.obs.RunFinished(observe.RunEvent{RunID: run.ID, Kind: run.Kind, Outcome: store.OutcomeFailed,
			Reason: err.Error(), Started: run.StartedAt, Finished: time.Now()})
	}
	return run, err
}

// stopInstance records that an instance stopped and gives back the work
// it holds, so that others take it at once instead of after the lease.
func (e *Engine) stopInstance(ctx context.Context, id string) error {
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE sentry_runs SET judge_by = NULL, judge_until = NULL WHERE judge_by = $1`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE sentry_work SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = $1 AND NOT done`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE sentry_instances SET stopped_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, 'released')`, WorkChannel)
		return err
	})
	return e.wrap("stop instance", err)
}

// listen holds a connection listening on WorkChannel and calls wake for
// every notification until ctx ends. It returns the connection's error.
func (e *Engine) listen(ctx context.Context, wake func()) error {
	// A connection of its own, outside the pool: it is held for as long
	// as the process runs and must not take a pooled connection away.
	conn, err := pgx.ConnectConfig(ctx, e.pool.Config().ConnConfig.Copy())
	if err != nil {
		return e.wrap("listen", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN `+WorkChannel); err != nil {
		return e.wrap("listen", err)
	}
	wake() // anything announced before LISTEN took effect
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return e.wrap("listen", err)
		}
		wake()
	}
}
