package sweep

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/checks/safetext"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/mirrorjob"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// What a sweep does for mirror admins: it checks a dual-stack mirror over
// each address family this vantage point reaches, records the
// certificates of https mirrors (and warns of those ending soon), leaves
// a mirror in maintenance alone, and re-verifies one whose offer was
// suspended before offering it again: only files verified since its
// suspension count as verified (the file states say so, store's
// verifiedSince), and the others are hashed (decide.RehashOnReturn).

// adminVerdict is what a vantage point found of a mirror besides its
// reachability.
type adminVerdict struct {
	// Families maps each address family the mirror was checked over to ""
	// (reached) or what failed; nil when it was checked over one only.
	Families map[string]string `json:"families,omitempty"`
	// Cert is the certificate of an https mirror.
	Cert *checks.Cert `json:"cert,omitempty"`
	// Maintenance: the mirror was in a maintenance window: not checked.
	Maintenance bool `json:"maintenance,omitempty"`
}

// AdminSums is what a sweep's report says of a mirror for its admin.
type AdminSums struct {
	// BrokenFamilies are the families it failed over while reached over
	// another (state.family_policy says what that did).
	BrokenFamilies []string `json:"broken_families,omitempty"`
	// Maintenance is the window it was in ("" for none): not checked.
	Maintenance string `json:"maintenance,omitempty"`
	// Returning: its offer was suspended (a maintenance window), and this
	// sweep re-verified it; ReturnLeft counts the files still to hash
	// before it is offered again (0: it returned).
	Returning  bool `json:"returning,omitempty"`
	ReturnLeft int  `json:"return_left,omitempty"`
}

// inWindow reports whether mirror id is in a maintenance window now, and
// the window's line.
func (t *task) inWindow(id int) (bool, string) {
	a, ok := t.admins[id]
	if !ok || !decide.InMaintenance(a.MaintSince, a.MaintUntil, t.job.now()) {
		return false, ""
	}
	return true, store.MaintenanceReason(a.MaintUntil, a.MaintReason)
}

// suspendedAt is when mirror id's offer was suspended, zero when it is
// not.
func (t *task) suspendedAt(id int) time.Time { return t.admins[id].SuspendedAt }

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

// reachMirror checks that a mirror answers — over each address family
// this vantage point reaches (mirrorjob.Families, mirrorjob.ReachOver),
// or once — and records each check with its family. It returns the check
// that stands for the mirror, what each family found (nil for one
// check), and the family its files are to be checked over ("" for the
// system's choice: every family answered, or there was one).
func (t *task) reachMirror(ctx context.Context, row *engine.Row, ms *mirrorSweep) (checks.Result, map[string]string, checks.Family) {
	fams := mirrorjob.Families(ctx, t.job.Client, t.job.Config.Checks.Families, ms.m.BaseURL)
	if fams == nil {
		res := checks.Reachable(ctx, t.job.Client, ms.m.BaseURL)
		if !mirrorjob.Stopped(ctx, res) {
			t.record(ctx, row, ms, "", 0, "HEAD", res, !res.Kind.Failed(), "")
		}
		return res, nil, ""
	}
	r, ok := mirrorjob.ReachOver(ctx, t.job.Client, ms.m.BaseURL, fams, func(fctx context.Context, res checks.Result) {
		t.record(fctx, row, ms, "", 0, "HEAD", res, !res.Kind.Failed(), "") // with its family
	})
	if !ok {
		return r.Result, nil, ""
	}
	return r.Result, r.Found, r.Pin
}

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

// familyVerdicts are a judged mirror's verdicts per family and vantage
// point.
func familyVerdicts(js *judged) decide.FamilyVerdicts {
	out := decide.FamilyVerdicts{}
	for v, vd := range js.verdicts {
		if len(vd.Families) < 2 {
			continue
		}
		fams := map[string]bool{}
		for f, why := range vd.Families {
			fams[f] = why != ""
		}
		out[v] = fams
	}
	return out
}

// judgeFamilies sets each counted mirror's broken families (and, under
// state.family_policy down, counts the sweep against it).
func (t *task) judgeFamilies(counted []*judged, need int) {
	all := make([]decide.FamilyVerdicts, len(counted))
	for i, js := range counted {
		all[i] = familyVerdicts(js)
	}
	aside := decide.FamiliesSetAside(all, t.maxDownFraction())
	for k := range aside {
		t.log.Warn("vantage point failed most mirrors over one address family: not counting those verdicts (its own network?)",
			"vantage", k[0], "family", k[1])
	}
	for i, js := range counted {
		s := &js.sums
		s.BrokenFamilies = decide.BrokenFamilies(all[i], need, aside)
		if !s.SweepFailed && decide.FamilyCountsAgainst(t.job.Config.State.FamilyPolicy, s.BrokenFamilies) {
			s.SweepFailed = true
		}
	}
}

// familyNote says which families a mirror was broken over, and why (as
// the first vantage point that found it said).
func familyNote(js *judged) string {
	if len(js.sums.BrokenFamilies) == 0 {
		return ""
	}
	vs := make([]string, 0, len(js.verdicts))
	for v := range js.verdicts {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	var parts []string
	for _, f := range js.sums.BrokenFamilies {
		why := ""
		for _, v := range vs {
			if w := js.verdicts[v].Families[f]; w != "" {
				why = w + " (from " + v + ")"
				break
			}
		}
		parts = append(parts, fmt.Sprintf("broken over %s: %s", checks.Family(f).Label(), why))
	}
	return "; " + strings.Join(parts, "; ")
}

// certOf is the certificate a judged mirror showed: the first vantage
// point's (by name) that saw one.
func certOf(js *judged) *checks.Cert {
	vs := make([]string, 0, len(js.verdicts))
	for v := range js.verdicts {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	for _, v := range vs {
		if c := js.verdicts[v].Cert; c != nil {
			return c
		}
	}
	return nil
}

// recordCerts records the certificates of the judged mirrors (written
// only when they changed) and raises a warning, once per certificate, for
// those ending within checks.tls_expiry_warning — not for a mirror in
// maintenance (it is raised after).
func (t *task) recordCerts(ctx context.Context, judged []*judged) {
	now := t.job.now()
	for _, js := range judged {
		c := certOf(js)
		if c == nil {
			continue
		}
		rec, err := t.job.Store.SaveCert(ctx, js.m.ID, *c)
		if err != nil {
			t.log.Warn("could not record a certificate", "mirror", js.m.Name, "err", err)
			continue
		}
		if rec.Error != "" || !rec.WarnedAt.IsZero() || !decide.TLSWarning(rec.NotAfter, now, t.job.Config.Checks.TLSExpiryWarning.D()) {
			continue
		}
		if in, _ := t.inWindow(js.m.ID); in {
			continue
		}
		first, err := t.job.Store.WarnCert(ctx, js.m.ID, rec.Fingerprint)
		if err != nil || !first {
			continue
		}
		why := fmt.Sprintf("the certificate of %s %s (%s), issued by %s", rec.Host, checks.ExpiresIn(rec.NotAfter, now),
			rec.NotAfter.UTC().Format("2006-01-02 15:04 UTC"), rec.Issuer)
		t.log.Warn("certificate expires soon", "mirror", js.m.Name, "host", rec.Host, "not_after", rec.NotAfter)
		observe.TLSWarned(observe.Or(t.job.Observer), observe.TLSEvent{At: now, RunID: t.run.ID, MirrorID: js.m.ID,
			Mirror: js.m.Name, BaseURL: safetext.URL(js.m.BaseURL), Host: rec.Host, Issuer: rec.Issuer, Names: rec.Names,
			NotAfter: rec.NotAfter, Fingerprint: rec.Fingerprint, Reason: why})
	}
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
