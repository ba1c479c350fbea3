package sweep

import (
	"fmt"
	"time"

	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// The return of a mirror whose offer was suspended (a maintenance window,
// or it went down or was switched off): a sweep re-verifies it before it
// is offered again. Only files verified since its suspension count as
// verified (the file states say so, store's verifiedSince), and the
// others are hashed (decide.RehashOnReturn).

// suspendedAt is when mirror id's offer was suspended, zero when it is
// not.
func (t *task) suspendedAt(id int) time.Time { return t.admins[id].SuspendedAt }

// returning picks, for a mirror whose offer is suspended and whose window
// is over, the files that must be hashed before it is offered again: those
// not hashed since the suspension (decide.RehashOnReturn), and those never
// seen there. The sweep's catch-up hashes them (checkFile, within
// sweep.catch_up_bytes); returnLeft then says how many are left. It
// returns how many it picked.
func (t *task) returning(ms *mirrorSweep, hash []bool) int {
	susp := t.suspendedAt(ms.m.ID)
	if susp.IsZero() {
		return 0
	}
	n := 0
	for i, f := range t.set.files {
		st, known := ms.files[f.key]
		if !known || decide.RehashOnReturn(st.HashedAt, susp) {
			hash[i] = true
			if known {
				// What was known before the window is not known now.
				st.Verified = false
				ms.files[f.key] = st
			}
			n++
		}
	}
	ms.sums.Returning = true
	return n
}

// returnLeft counts, after a returning mirror's files were checked, those
// still neither hashed since its suspension nor found missing or wrong.
func (t *task) returnLeft(ms *mirrorSweep, picked []bool) int {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	left := 0
	for i, p := range picked {
		if r := ms.results[i]; p && (!r.seen || !(r.hashed || r.kind.Definitive())) {
			left++
		}
	}
	return left
}

// settleReturn completes the return of a mirror whose offer was
// suspended, once a sweep re-verified it (decide.Returned): the
// suspension is lifted and, for a suspension a maintenance window began,
// the return from maintenance recorded in its history.
func (t *task) settleReturn(js *judged, prev store.MirrorState, mm *store.MirrorMarks) {
	s := &js.sums
	if prev.SuspendedAt.IsZero() || !s.Returning || !decide.Returned(false, s.Reachable, s.ReturnLeft) {
		return
	}
	mm.State.Returned = true
	if prev.MaintSince.IsZero() || prev.SuspendedAt.After(prev.MaintUntil) {
		// Suspended when it went down or was switched off, not by a
		// window: its state tells its return.
		return
	}
	if mm.State.From == "" {
		mm.State.From = store.StateMaintenance
	}
	mm.Reason = fmt.Sprintf("back after maintenance, every file hashed since %s: %s",
		prev.SuspendedAt.UTC().Format("2006-01-02 15:04 UTC"), mm.Reason)
	mm.State.Reason = mm.Reason
}
