package engine

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// A run's Task, built once per worker (Job.Prepare) and shared by the rows
// of the run the worker works. Building it can fail for a while (the
// staging master away, the database restarting): then the rows of the run
// wait, one try at a time and with backoff shared by all of them, holding
// their leases rather than being given back at once — a row given back is
// claimed again at once (the give-back announces it), and the worker would
// spin on a run it cannot prepare. After PrepareFor a row is given back,
// for an instance that may fare better.

// prepareRetryMax bounds the wait between two tries of one run's Prepare.
const prepareRetryMax = time.Minute

// prepare returns the Task of run, building it (Job.Prepare) when this
// worker has none yet, and retrying while it fails, until ctx ends or
// PrepareFor has passed.
func (w *Worker) prepare(ctx context.Context, run Run, log *slog.Logger) (Task, error) {
	giveUp := time.Now().Add(w.e.opts.PrepareFor)
	build := func() (Task, error) {
		job, err := w.e.job(run.Kind)
		if err != nil {
			return nil, err
		}
		return job.Prepare(ctx, run)
	}
	for {
		t, retryIn, err := w.tasks.prepare(ctx, run.ID, build, w.e.opts.PrepareRetry)
		if err == nil || ctx.Err() != nil || time.Now().After(giveUp) {
			return t, err
		}
		if retryIn > 0 {
			log.Warn("could not prepare the run's work; retrying", "retry_in", retryIn, "err", err)
		}
	}
}

// tasks are the runs a worker prepared (Job.Prepare, or Plan.Task for the
// runs it planned), by run id, until the run ends; and, for the runs it is
// preparing, whose turn it is and when the next try may come.
type tasks struct {
	mu    sync.Mutex
	m     map[int64]Task
	gates map[int64]*gate
}

// gate orders the tries to build one run's Task.
type gate struct {
	turn chan struct{} // held by the row trying, one at a time
	next time.Time     // no try before
	wait time.Duration // the last wait after a failure; 0 before any
}

func newTasks() *tasks { return &tasks{m: map[int64]Task{}, gates: map[int64]*gate{}} }

func (ts *tasks) get(runID int64) Task {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.m[runID]
}

// set records t as run runID's task.
func (ts *tasks) set(runID int64, t Task) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.m[runID] = t
}

func (ts *tasks) gate(runID int64) *gate {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	g := ts.gates[runID]
	if g == nil {
		g = &gate{turn: make(chan struct{}, 1)}
		ts.gates[runID] = g
	}
	return g
}

// prepare returns run runID's task, building it with build when there is
// none: one build at a time per run, none before the backoff of the last
// failure has passed. When build fails, retryIn is the wait before the
// next try (0 when the failure was ctx's end).
func (ts *tasks) prepare(ctx context.Context, runID int64, build func() (Task, error), first time.Duration) (t Task, retryIn time.Duration, err error) {
	if t := ts.get(runID); t != nil {
		return t, 0, nil
	}
	g := ts.gate(runID)
	select {
	case g.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, context.Cause(ctx)
	}
	defer func() { <-g.turn }()
	if t := ts.get(runID); t != nil { // built while this row waited its turn
		return t, 0, nil
	}
	if d := time.Until(g.next); d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, 0, context.Cause(ctx)
		}
	}
	t, err = build()
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, err
		}
		g.wait = min(max(2*g.wait, first), prepareRetryMax)
		g.next = time.Now().Add(g.wait)
		return nil, g.wait, err
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if have := ts.m[runID]; have != nil {
		return have, 0, nil
	}
	ts.m[runID] = t
	delete(ts.gates, runID)
	return t, 0, nil
}

func (ts *tasks) forget(runID int64) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.m, runID)
	delete(ts.gates, runID)
}

// ids lists the runs prepared, or being prepared.
func (ts *tasks) ids() []int64 {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]int64, 0, len(ts.m)+len(ts.gates))
	for id := range ts.m {
		out = append(out, id)
	}
	for id := range ts.gates {
		if ts.m[id] == nil {
			out = append(out, id)
		}
	}
	return out
}
