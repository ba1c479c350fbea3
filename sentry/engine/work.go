package engine

import (
	"context"
	"time"

	"github.com/mirrorsentry/sentry/checks"
)

// A claimed row, worked: from its claim to its completion, or its give-back
// when the work could not finish.

// begin starts work on claimed rows, each in a goroutine of its own.
func (w *Worker) begin(rows []*Row) {
	for _, r := range rows {
		if !w.inflight.start() {
			return
		}
		ctx, cancel := w.rowContext(r)
		go func() {
			defer w.inflight.done()
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
	w.held.setCancel(r, cancel)
	return checks.WithGuard(rowCtx, func() error {
		if !r.valid() {
			return errLapsed
		}
		return context.Cause(rowCtx)
	}), cancel
}

// do works one claimed row and records what it found, or gives the row
// back when it could not finish it.
func (w *Worker) do(ctx context.Context, r *Row) {
	defer func() {
		w.held.release(r)
		w.signals.change()
	}()
	log := w.log.With("run", r.Run.ID, "mirror_id", r.MirrorID)
	if r.Claims > 1 {
		log.Info("taking over work an instance gave back or left", "claims", r.Claims)
	}
	var res Result
	ok := false
	task, err := w.prepare(ctx, r.Run, log)
	if err == nil {
		res, ok = task.Work(ctx, r)
	} else if ctx.Err() == nil {
		log.Error("could not prepare the run's work; giving the row back for another instance", "err", err)
	}
	w.held.finishing(r)
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
