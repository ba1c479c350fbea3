package engine

import (
	"context"
	"sync/atomic"
)

// The runs a worker judges (judge.go: how a run is judged, once).

// judging is a run this worker judges, held under a lease like a row.
type judging struct {
	fence   judgeFence
	renewed atomic.Int64 // since epoch (monotonic), see mono()
	cancel  context.CancelFunc
}

// judgeDue claims the runs due for judging and judges each in a goroutine
// of its own, holding its lease meanwhile.
func (w *Worker) judgeDue(ctx context.Context) {
	at := mono()
	claims, err := w.e.claimJudging(ctx, w)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("could not look for runs to judge", "err", err)
		}
		return
	}
	jctxs := make([]context.Context, len(claims))
	for i, jc := range claims {
		var cancel context.CancelFunc
		jctxs[i], cancel = context.WithCancel(w.work)
		w.held.addJudging(jc, at, cancel)
	}
	for i, jc := range claims {
		if !w.inflight.start() {
			w.held.dropJudging(jc)
			continue
		}
		go func() {
			defer w.inflight.done()
			w.e.judge(jctxs[i], w, jc)
			w.held.dropJudging(jc)
			w.tasks.forget(jc.run.ID)
			w.signals.change()
		}()
	}
}
