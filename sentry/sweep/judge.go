package sweep

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/mirrorjob"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// How a sweep counts a failure.
//
// A mirror failed a sweep when enough vantage points found it failing
// (decide.Quorum: state.quorum, by default a majority of the vantage points
// seen in the last hour): from a vantage point, a mirror fails when it is
// unreachable, or when its files were checked from there and none is
// present while every failure was transient (decide.FailedWholesale). A
// vantage point that failed most mirrors while others reached them is set
// aside (its own network). Then the mass-failure guard (decide.Guard): when
// the master is unreachable or more than guard.max_down_fraction of the
// mirrors failed, failures count for nothing and nothing is marked down.
// Each mirror's failure or success is a step of its hysteresis
// (decide.Hysteresis: state.down_after, state.up_after), and its marks
// follow (decide.ForSweep): definitive file facts take locations off at
// once; locations are offered only while the mirror is up.

// quorumWindow is how far back vantage points count towards the default
// quorum: those seen in the last hour.
const quorumWindow = time.Hour

// judged is one mirror as the judgement sees it.
type judged struct {
	m        store.Mirror
	sums     MirrorSums
	good     []int
	missing  []int
	withheld []int
	verified bool
	verdicts map[string]verdict
	// unchecked: no vantage point finished checking it (sentry's own
	// trouble): neither counted nor marked.
	unchecked bool
	// maint: it was in a maintenance window: not checked, not counted.
	maint bool
}

// Judge is a sweep's last step: it reads what every vantage point found of
// every mirror, applies the quorum, the guard and hysteresis, marks the
// bouncer tables and returns each mirror's final sums.
func (t *task) Judge(ctx context.Context, j *engine.Judgement) (engine.Ending, error) {
	mirrors, took, err := t.readRows(j)
	if err != nil {
		return engine.Ending{}, err
	}
	seen, err := j.VantagesSeen(ctx, quorumWindow)
	if err != nil {
		return engine.Ending{}, err
	}
	for _, v := range seen {
		took[v] = true
	}
	q := decide.NewQuorum(t.job.Config.State.Quorum, len(took))

	var counted, maint []*judged
	var verdicts []decide.Verdicts
	for _, js := range mirrors {
		if js.unchecked {
			continue
		}
		if js.maint {
			maint = append(maint, js)
			continue
		}
		vs := decide.Verdicts{}
		for v, vd := range js.verdicts {
			vs[v] = vd.Failed
		}
		counted = append(counted, js)
		verdicts = append(verdicts, vs)
	}
	results, ignored := q.Apply(verdicts, t.maxDownFraction())
	for _, v := range ignored {
		t.log.Warn("vantage point failed most mirrors: not counting its verdicts (its own network?)", "vantage", v)
	}
	failed, anyBad := 0, false
	for i, js := range counted {
		s := &js.sums
		c := results[i]
		s.FailingFrom, s.CheckedFrom, s.SweepFailed, s.Partial = c.FailingFrom, c.CheckedFrom, c.Failed, c.Partial
	}
	t.judgeFamilies(counted, q.Need)
	for _, js := range counted {
		s := &js.sums
		if s.SweepFailed {
			failed++
		}
		anyBad = anyBad || s.SweepFailed || len(js.missing) > 0
		for k := range s.Failures {
			anyBad = anyBad || k.Definitive()
		}
	}
	guard := ""
	if anyBad {
		guard = decide.Guard(decide.GuardFacts{MasterDown: release.NewMaster(t.job.Client, t.masterURL()).Down(ctx),
			Failed: failed, Checked: len(counted), MaxDownFraction: t.maxDownFraction(),
			Failing: "failed the sweep"})
	}
	if guard != "" {
		t.log.Warn("mass-failure guard: not counting failures nor marking anything down", "why", guard)
	}
	for _, js := range append(counted, maint...) {
		if err := t.markMirror(ctx, j.Fence(), js, guard); err != nil {
			return engine.Ending{}, err
		}
	}
	t.conditions(ctx, mirrors)
	t.recordCerts(ctx, counted)
	end := engine.Ending{Outcome: store.OutcomeCompleted, Files: map[int]any{}}
	for _, js := range mirrors {
		end.Files[js.m.ID] = rowResult{Sums: js.sums}
	}
	note := ""
	if len(ignored) > 0 {
		note = fmt.Sprintf("verdicts of vantage points %s not counted: they failed more than guard.max_down_fraction of the mirrors",
			strings.Join(ignored, ", "))
	}
	end.Reason = note
	if guard != "" {
		end.Outcome, end.Reason = store.OutcomeGuarded, joinNonEmpty("; ", mirrorjob.GuardReason(guard), note)
		end.After = mirrorjob.GuardHeld(t.job.Observer, t.run, failed, guard)
	}
	end.After = t.promoteAfter(end.After)
	t.log.Info("sweep judged", "outcome", end.Outcome, "mirrors", len(mirrors), "quorum", q.Need, "vantage_points", q.Seen)
	return end, nil
}

// conditions fills in each judged mirror's condition from the marks as
// they now stand: degraded for an up mirror with locations off. Without
// them (the database away) the condition is the state.
func (t *task) conditions(ctx context.Context, mirrors []*judged) {
	off, err := t.job.Store.OffLocations(ctx)
	if err != nil {
		t.log.Warn("could not read the locations off; conditions are the states", "err", err)
	}
	for _, js := range mirrors {
		s := &js.sums
		s.Condition = s.State
		if o := off[js.m.ID]; s.State == decide.Up && o.Count > 0 {
			s.Condition, s.LocationsOff, s.OffLocations = "degraded", o.Count, o.First
		}
	}
}

// maxDownFraction is the guard's share of mirrors failing at once
// (mirrorjob.MaxDownFraction).
func (t *task) maxDownFraction() float64 {
	return mirrorjob.MaxDownFraction(t.job.Config, t.restricted)
}

// readRows reads every row's verdicts and files, and the vantage points
// that took part.
func (t *task) readRows(j *engine.Judgement) ([]*judged, map[string]bool, error) {
	var out []*judged
	took := map[string]bool{}
	for _, r := range j.Rows {
		m, ok := t.mirrors[r.MirrorID]
		if !ok {
			continue // deactivated since the run began
		}
		js := &judged{m: m, verdicts: map[string]verdict{},
			sums: MirrorSums{ID: m.ID, Name: m.Name, Failures: map[checks.Kind]int{}}}
		if err := json.Unmarshal(r.Verdicts, &js.verdicts); err != nil {
			return nil, nil, fmt.Errorf("read the verdicts on mirror %s: %w", m.Name, err)
		}
		for v, vd := range js.verdicts {
			took[v] = true
			js.maint = js.maint || vd.Maintenance
		}
		var res rowResult
		done, err := r.DecodeFiles(&res)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case done:
			if res.Gone {
				continue
			}
			js.sums, js.good, js.missing, js.withheld, js.verified = res.Sums, res.Good, res.Missing, res.Withheld, res.Verified
			if js.sums.Failures == nil {
				js.sums.Failures = map[checks.Kind]int{}
			}
		case len(js.verdicts) > 0:
			// No vantage point reached it: its files were not checked.
			vs := make([]string, 0, len(js.verdicts))
			for v := range js.verdicts {
				vs = append(vs, v)
			}
			sort.Strings(vs)
			vd := js.verdicts[vs[0]]
			js.sums.FirstFailure = vd.Why
			if vd.Kind != "" {
				js.sums.Failures[checks.Kind(vd.Kind)]++
			}
		default:
			js.unchecked = true
			js.sums.Note = "not checked: every vantage point that was to check it left"
		}
		out = append(out, js)
	}
	return out, took, nil
}

// masterURL is what the guard asks the master for: the manifest of the
// newest known release, or the master's base URL.
func (t *task) masterURL() string {
	if n := len(t.set.releases); n > 0 {
		return t.set.releases[n-1].ManifestURL
	}
	return t.job.Config.Master.URL + "/"
}

// markMirror applies hysteresis to one mirror and writes its state, marks
// and log row in one transaction (under the judging's fence, with the
// mirror's state locked). A mirror this run judged before (a judgement
// redone) is left as it was, and its change not announced again. With
// guard set, failures neither count towards the state nor mark anything
// down.
func (t *task) markMirror(ctx context.Context, fence store.Fence, js *judged, guard string) error {
	s := &js.sums
	h := mirrorjob.Hysteresis(t.job.Config)
	var step decide.Step
	var why string
	var marks store.MirrorMarks
	var wrote bool
	err := engine.Retry(ctx, t.log.With("mirror_id", js.m.ID), "marking", engine.MarkRetryFor, func() (err error) {
		marks, wrote, err = t.job.Store.JudgeMirror(ctx, js.m.ID, t.run.ID, t.run.StartedAt, fence, func(prev store.MirrorState) store.MirrorMarks {
			if m, ok := t.holdInMaintenance(js, prev); ok {
				why = m.Reason
				m.Covered = t.covered(guard)
				return m
			}
			step = h.Next(decide.State{State: prev.State, FailStreak: prev.FailStreak, OkStreak: prev.OkStreak}, s.SweepFailed, guard)
			why = step.Reason(t.reason(js))
			up := step.Next.State == decide.Up
			var locs []decide.LocationMark
			if s.Reachable {
				for _, id := range js.missing {
					locs = append(locs, decide.LocationMark{LocationID: id, Mark: decide.ForSweep(decide.Missing, up)})
				}
				for _, id := range js.good {
					locs = append(locs, decide.LocationMark{LocationID: id, Mark: decide.ForSweep(decide.Good, up)})
				}
				for _, id := range js.withheld {
					locs = append(locs, decide.LocationMark{LocationID: id, Mark: decide.ForSweep(decide.Withheld, up)})
				}
			}
			if guard != "" {
				locs = decide.KeepGood(locs)
			}
			mm := store.MirrorMarks{
				Rating: js.m.Rating, LogDate: t.run.StartedAt, Up: up, Reason: why, Locations: locs,
				Down: step.Next.State == decide.Down && guard == "",
				State: &store.StateUpdate{State: step.Next.State, FailStreak: step.Next.FailStreak, OkStreak: step.Next.OkStreak,
					At: t.job.now(), Reason: why, From: step.From, FailingFrom: s.FailingFrom, CheckedFrom: s.CheckedFrom,
					BrokenFamilies: s.BrokenFamilies},
			}
			// Rows an earlier checker left on a mirror sentry never
			// verified anything on are decided here (decide.Vouch).
			mm.Covered, mm.Verified = t.covered(guard), js.verified
			t.settleReturn(js, prev, &mm)
			why = mm.Reason
			return mm
		})
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		t.log.Error("marking failed", "mirror", js.m.Name, "err", err)
		s.Note = "marking failed: " + err.Error()
		return nil
	}
	if !wrote {
		// Judged by this run before: its state is what that judgement
		// wrote.
		states, err := t.job.Store.MirrorStates(ctx)
		if err == nil {
			s.State = states[js.m.ID].State
		}
		return nil
	}
	s.State, s.StateChanged = marks.State.State, marks.State.From != ""
	if s.StateChanged {
		mirrorjob.StateChanged(t.log, t.job.Observer, t.run, js.m, marks.State, why)
	}
	return nil
}

// covered are the locations the sweep covers, whose rows an earlier
// checker left on a mirror sentry never verified are taken off
// (store.MirrorMarks.Covered); none while the guard holds.
func (t *task) covered(guard string) []int {
	if guard != "" {
		return nil
	}
	ids := make([]int, len(t.set.locations))
	for i, l := range t.set.locations {
		ids[i] = l.id
	}
	return ids
}

// reason is what the sweep found of a mirror, for its log row and state.
func (t *task) reason(js *judged) string {
	s := &js.sums
	kind := "sweep"
	if t.deep {
		kind = "deep sweep"
	}
	if !s.Reachable {
		return fmt.Sprintf("%s: unreachable: %s", kind, s.FirstFailure) + vantageNote(s) + familyNote(js)
	}
	r := fmt.Sprintf("%s: %d/%d files present", kind, s.OK+s.Unchanged, s.Checked)
	if s.Hashed > 0 {
		r += fmt.Sprintf(" (%d hashed)", s.Hashed)
	}
	if s.Failed > 0 {
		r += fmt.Sprintf(", %d failed (%s); first: %s", s.Failed, checks.CountsText(s.Failures), s.FirstFailure)
	}
	if s.Withheld > 0 {
		r += fmt.Sprintf("; %d locations withheld until their files are hashed (sweep.catch_up_bytes)", s.Withheld)
	}
	return strings.TrimSpace(r) + vantageNote(s) + familyNote(js)
}

// vantageNote says, when several vantage points checked a mirror, which it
// failed from.
func vantageNote(s *MirrorSums) string {
	switch {
	case len(s.CheckedFrom) < 2 || len(s.FailingFrom) == 0:
		return ""
	case s.Partial:
		return fmt.Sprintf("; partially unreachable: failing from %s only (%d of %d vantage points, fewer than the quorum)",
			strings.Join(s.FailingFrom, ", "), len(s.FailingFrom), len(s.CheckedFrom))
	default:
		return fmt.Sprintf("; failing from %s (%d of %d vantage points)",
			strings.Join(s.FailingFrom, ", "), len(s.FailingFrom), len(s.CheckedFrom))
	}
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}
