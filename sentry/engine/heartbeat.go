package engine

import (
	"context"
	"time"
)

// A worker's leases, as it keeps them (lease.go: as the database does).
//
// The heartbeat, every third of a lease, sends the leases of what the
// worker holds (holdings.leases); those the database renewed count as
// renewed from the moment the beat was sent, and the others were taken
// over: their work is cancelled (holdings.renewed). The watchdog, every
// twelfth of a lease, cancels the work whose lease was not renewed within
// two thirds of it (holdings.lapse), before anyone else may take it over.
// Neither holds the holdings' lock while the database is asked.

// epoch is the origin of the monotonic times workers keep in atomics.
var epoch = time.Now()

// mono is the monotonic time since epoch: unaffected by changes of the
// wall clock, and running on while the process is stopped (SIGSTOP).
func mono() int64 { return int64(time.Since(epoch)) }

// valid reports whether the row's lease is still to be worked on: renewed
// within validFor.
func (r *Row) valid() bool {
	return time.Duration(mono()-r.renewed.Load()) < validFor(r.lease)
}

// heartbeat renews the worker's leases every third of a lease.
func (w *Worker) heartbeat(ctx context.Context) {
	every(ctx, w.e.opts.Lease/3, func() { w.beat(ctx) })
}

// beat is one heartbeat: it renews the leases the worker holds, cancels
// the work of those taken over, and gives back the orphans the last beat
// found.
func (w *Worker) beat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, w.e.opts.Lease/3)
	defer cancel()
	held, back, sent := w.held.leases()
	renewed, orphans, err := w.e.renew(ctx, w.id, held, back)
	if err != nil {
		if w.work.Err() == nil {
			w.log.Warn("heartbeat failed; work stops by itself if this lasts two thirds of a lease", "lease", w.e.opts.Lease, "err", err)
		}
		return
	}
	w.held.renewed(w.log, sent, held, renewed, orphans)
	if len(back) > 0 {
		w.signals.wake()
	}
}

// watchdog stops the work on rows and judgings whose lease was not
// renewed in time (self-fencing): their contexts are cancelled, so that
// long transfers stop too, not only new requests.
func (w *Worker) watchdog(ctx context.Context) {
	every(ctx, max(w.e.opts.Lease/12, 10*time.Millisecond), func() { w.held.lapse(w.log, w.e.opts.Lease) })
}

// every calls f every period, the first time a period from now, until
// ctx ends.
func every(ctx context.Context, period time.Duration, f func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f()
	}
}
