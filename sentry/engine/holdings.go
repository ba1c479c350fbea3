package engine

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// holdings is what a worker holds under its leases: its rows, the slots
// reserved by claims on their way to the database, its judgings, and the
// orphans the last heartbeat found. One lock guards it, and it is never
// held while the database is asked: a hanging database never keeps the
// watchdog from stopping the work.
type holdings struct {
	mu       sync.Mutex
	rows     map[WorkKey]*Row
	reserved int
	judgings map[int64]*judging
	orphans  []heldLease
}

func newHoldings() *holdings {
	return &holdings{rows: map[WorkKey]*Row{}, judgings: map[int64]*judging{}}
}

// reserve reserves, and returns, the slots of slots that no row holds and
// no claim has reserved. Every reserve is followed by one claimed.
func (h *holdings) reserve(slots int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	free := max(slots-len(h.rows)-h.reserved, 0)
	h.reserved += free
	return free
}

// claimed ends the reservation of n slots, and holds rows (claimed in
// them), their leases counting from at.
func (h *holdings) claimed(n int, at int64, rows []*Row) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reserved -= n
	for _, r := range rows {
		k := WorkKey{r.Run.ID, r.MirrorID}
		if old := h.rows[k]; old != nil && old.cancel != nil {
			// Cannot happen (a worker never claims back its own row);
			// if it did, the older copy of the work yields.
			old.cancel()
		}
		r.renewed.Store(at)
		h.rows[k] = r
	}
}

// setCancel records how the work on a held row is cancelled.
func (h *holdings) setCancel(r *Row, cancel context.CancelFunc) {
	h.mu.Lock()
	r.cancel = cancel
	h.mu.Unlock()
}

// finishing records that the work on r returned: the row is being
// completed or given back, and neither the heartbeat nor the watchdog
// cancels it any more.
func (h *holdings) finishing(r *Row) {
	h.mu.Lock()
	r.finishing = true
	h.mu.Unlock()
}

// release lets go of r, once it is completed or given back.
func (h *holdings) release(r *Row) {
	k := WorkKey{r.Run.ID, r.MirrorID}
	h.mu.Lock()
	if h.rows[k] == r {
		delete(h.rows, k)
	}
	h.mu.Unlock()
}

// addJudging holds a judging claimed at at, whose work cancel stops.
func (h *holdings) addJudging(jc judgeClaim, at int64, cancel context.CancelFunc) {
	j := &judging{fence: jc.fence, cancel: cancel}
	j.renewed.Store(at)
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.judgings[jc.run.ID]; old != nil {
		old.cancel()
	}
	h.judgings[jc.run.ID] = j
}

// dropJudging lets go of a judging (if it is still the one claimed as jc),
// cancelling its context.
func (h *holdings) dropJudging(jc judgeClaim) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if j := h.judgings[jc.run.ID]; j != nil && j.fence == jc.fence {
		j.cancel()
		delete(h.judgings, jc.run.ID)
	}
}

// leases is what a heartbeat sends: the leases held, the orphans found by
// the last beat (to be given back; they are forgotten here), and the
// moment of sending, from which the leases renewed count.
func (h *holdings) leases() (held, back []heldLease, sent int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sent = mono()
	for _, r := range h.rows {
		held = append(held, heldLease{run: r.Run.ID, mirror: r.MirrorID, token: r.Claims})
	}
	for _, j := range h.judgings {
		held = append(held, heldLease{run: j.fence.run, token: j.fence.token})
	}
	back, h.orphans = h.orphans, nil
	return held, back, sent
}

// renewed applies what a heartbeat sent at sent, asking for the leases
// held, found: the leases renewed count as renewed from sent; the others
// it asked for were taken over, and their work is cancelled (under the
// lock, before anything could count them valid again); the orphans it
// found that are not held by now are given back at the next beat (a claim
// made while the beat was on its way is held by then).
func (h *holdings) renewed(log *slog.Logger, sent int64, held []heldLease, renewed map[heldLease]bool, orphans []heldLease) {
	h.mu.Lock()
	defer h.mu.Unlock()
	asked := make(map[heldLease]bool, len(held))
	for _, l := range held {
		asked[l] = true
	}
	for k, r := range h.rows {
		l := heldLease{run: k.RunID, mirror: k.MirrorID, token: r.Claims}
		switch {
		case renewed[l]:
			r.renewed.Store(sent)
		case asked[l] && !r.finishing && r.cancel != nil:
			log.Warn("work taken over by another instance; dropping it", "run", k.RunID, "mirror_id", k.MirrorID)
			r.cancel()
		}
	}
	for id, j := range h.judgings {
		l := heldLease{run: id, token: j.fence.token}
		switch {
		case renewed[l]:
			j.renewed.Store(sent)
		case asked[l]:
			log.Warn("judging taken over by another instance; dropping it", "run", id)
			j.cancel()
		}
	}
	for _, o := range orphans {
		if _, held := h.rows[WorkKey{o.run, o.mirror}]; !held {
			h.orphans = append(h.orphans, o)
		}
	}
}

// lapse stops the work on the rows and judgings whose lease of lease was
// not renewed in time: their contexts are cancelled (self-fencing).
func (h *holdings) lapse(log *slog.Logger, lease time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, r := range h.rows {
		if !r.finishing && !r.valid() && r.cancel != nil {
			log.Warn("lease not renewed in time: stopping work on the mirror before another sentry takes it over",
				"run", k.RunID, "mirror_id", k.MirrorID)
			r.finishing = true
			r.cancel()
		}
	}
	for id, j := range h.judgings {
		if time.Duration(mono()-j.renewed.Load()) >= validFor(lease) {
			log.Warn("judging lease not renewed in time: stopping the judgement", "run", id)
			j.cancel()
		}
	}
}
