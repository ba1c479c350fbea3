package engine

import (
	"context"
	"time"
)

// The worker's side of claiming (claim.go: how the database hands out
// rows).

// claimLoop claims what the worker has room for, starts the work on what
// it got, looks for runs to judge and, every third of a lease, tidies up;
// then it waits for a wake-up (work announced, a row or run ended here)
// or the next poll, until the worker stops claiming.
func (w *Worker) claimLoop() {
	t := time.NewTicker(w.e.opts.Poll)
	defer t.Stop()
	var tidied time.Time
	for w.stop.Err() == nil && w.work.Err() == nil {
		rows, err := w.e.claimOnce(w.work, w)
		if err != nil && w.work.Err() == nil {
			w.log.Warn("could not claim work; retrying", "err", err)
		}
		w.begin(rows)
		if w.stop.Err() == nil {
			if now := time.Now(); now.Sub(tidied) >= w.e.opts.Lease/3 {
				tidied = now
				w.tidy(w.work)
			}
			w.judgeDue(w.work)
		}
		select {
		case <-w.signals.woken():
		case <-t.C:
		case <-w.stop.Done():
		case <-w.work.Done():
		}
	}
}

// claiming runs claim (which claims rows in the database) with the number
// of free slots, reserved meanwhile, and holds the rows it returns: a
// worker never holds more rows than its slots, whoever claims (its claim
// loop, or Drive planning a run).
func (w *Worker) claiming(claim func(free int) ([]*Row, error)) ([]*Row, error) {
	free := w.held.reserve(w.e.opts.Slots)
	at := mono() // the leases count from before the claim was sent
	rows, err := claim(free)
	if err != nil {
		w.held.claimed(free, at, nil)
		return nil, err
	}
	w.held.claimed(free, at, rows)
	return rows, nil
}

// tidy forgets vantage points that left, closes runs nobody can finish
// (a daemon) and drops prepared runs that ended.
func (w *Worker) tidy(ctx context.Context) {
	if _, err := w.e.forgetGoneVantages(ctx); err != nil && ctx.Err() == nil {
		w.log.Warn("could not forget vantage points that left", "err", err)
	}
	if w.role == RoleDaemon {
		if n, err := w.e.CloseAbandoned(ctx); err == nil && n > 0 {
			w.log.Warn("closed runs every sentry working on had left", "runs", n)
		}
	}
	for _, id := range w.tasks.ids() {
		st, err := w.e.status(ctx, id)
		if err == nil && st.Finished {
			w.tasks.forget(id)
		}
	}
}
