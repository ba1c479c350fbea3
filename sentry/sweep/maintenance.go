package sweep

import (
	"strings"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// A mirror in a maintenance window: a sweep does not contact it, holds its
// state as it is and keeps its locations off until the window is over;
// then it returns (returning.go).

// inWindow reports whether mirror id is in a maintenance window now, and
// the window's line.
func (t *task) inWindow(id int) (bool, string) {
	a, ok := t.admins[id]
	if !ok || !decide.InMaintenance(a.MaintSince, a.MaintUntil, t.job.now()) {
		return false, ""
	}
	return true, store.MaintenanceReason(a.MaintUntil, a.MaintReason)
}

// maintenance is a row's result for a mirror in a maintenance window: it
// is not contacted at all.
func (t *task) maintenance(row *engine.Row, m store.Mirror, why string) (verdict, *rowResult) {
	v := verdict{adminVerdict: adminVerdict{Maintenance: true}, Why: why}
	if !row.Files {
		return v, nil
	}
	return v, &rowResult{Sums: MirrorSums{ID: m.ID, Name: m.Name, Failures: map[checks.Kind]int{}, Note: why,
		AdminSums: AdminSums{Maintenance: why}}}
}

// holdInMaintenance is the judgement of a mirror in a maintenance window
// (as the vantage points found it, or as its state says now): its state
// held as it is (nothing counted, nothing announced), every location
// unhealthy, and its log row saying why. ok false: no window holds.
func (t *task) holdInMaintenance(js *judged, prev store.MirrorState) (store.MirrorMarks, bool) {
	const held = " (not checked; nothing counted)"
	now := t.job.now()
	why := strings.TrimSuffix(js.sums.Maintenance, held)
	if decide.InMaintenance(prev.MaintSince, prev.MaintUntil, now) {
		why = store.MaintenanceReason(prev.MaintUntil, prev.MaintReason)
	} else if !js.maint {
		return store.MirrorMarks{}, false
	}
	why += held
	js.sums.Maintenance, js.sums.State = why, prev.State
	return store.MirrorMarks{Rating: js.m.Rating, LogDate: t.run.StartedAt, Up: false, Reason: why, Down: true,
		State: &store.StateUpdate{State: prev.State, FailStreak: prev.FailStreak, OkStreak: prev.OkStreak, At: now,
			Reason: why, FailingFrom: prev.FailingFrom, CheckedFrom: prev.CheckedFrom, BrokenFamilies: prev.BrokenFamilies}}, true
}
