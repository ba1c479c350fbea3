package prime

import (
	"context"
	"time"

	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// StateMaintenance is a mirror's summary state in a prime while its
// maintenance window holds: it is not contacted, and nothing is marked
// (its locations stay unhealthy until it is re-verified after the
// window).
const StateMaintenance = "maintenance"

// window is a mirror's maintenance window.
type window struct {
	since, until time.Time
	reason       string
}

// maintenance reads the mirrors' maintenance windows.
func (j *Job) maintenance(ctx context.Context) (map[int]window, error) {
	admins, err := j.Store.MirrorAdmins(ctx)
	if err != nil {
		return nil, err
	}
	out := map[int]window{}
	for id, a := range admins {
		if !a.MaintSince.IsZero() {
			out[id] = window{a.MaintSince, a.MaintUntil, a.MaintReason}
		}
	}
	return out, nil
}

// inMaintenance is the line of the maintenance window mirror id is in
// now, "" when none holds.
func (t *task) inMaintenance(id int) string {
	w, ok := t.windows[id]
	if !ok || !decide.InMaintenance(w.since, w.until, time.Now()) {
		return ""
	}
	return store.MaintenanceReason(w.until, w.reason)
}

// maintenance settles a mirror in a maintenance window without contacting
// it: its log row says so, and none of its locations is marked.
func (t *task) maintenance(ctx context.Context, row *engine.Row, mp *mirrorPrime, why string) MirrorSums {
	return t.uncontacted(ctx, row, mp, StateMaintenance, why+": not primed")
}
