package prime

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/mirrorjob"
	"github.com/mirrorsentry/sentry/sentry/record"
)

// Address families, as a sweep checks them (package mirrorjob), so that a
// prime does not undo what the sweeps found: `active=true` is a promise
// to every user, IPv6 users included.
//
// A mirror whose host has addresses of several families this vantage
// point reaches (checks.families) has its reachability checked over each
// first: a request per family, which a single-stack mirror does not pay.
//
//   - Every family answers: each file is primed and its bytes verified
//     over the first (IPv4), as on any mirror, and its presence and size
//     checked over each other with a HEAD (package primer, families.go,
//     says why a HEAD). A file missing, of another size or wrong over one
//     family while another serves it right fails, over that family alone
//     (mirrorjob.JudgeFamilies): its location is off, and the check, the
//     file's state (sentry_file_state.failed_over) and so every view say
//     "missing over IPv6 only". Each check is recorded with its family.
//   - A family does not answer at all, while another does: the mirror is
//     broken over it, and its files are checked over one that answers.
//     state.family_policy decides the rest, as in a sweep: degraded (the
//     default), the mirror is marked as its files say (clients fall back
//     to the other family on a failed connection) and the summary says
//     it; down, it counts as an unreachable mirror — which a prime judges
//     down, under the mass-failure guard — unless this vantage point
//     failed more than guard.max_down_fraction of the dual-stack mirrors
//     over that family (decide.FamiliesSetAside: its own network), which
//     the judgement sees across every mirror of the run (judgeFamilies).
//   - No family answers: the files are tried over the system's choice, as
//     on a single-stack mirror (they fail, and the mirror with them).

// familiesOf checks the reachability of mp's mirror over each family it is
// checked over (mirrorjob.Families), recording each check with its family,
// and returns the families its files are checked over
// (primer.Mirror.Families): every family when each answered, the one that
// answers when another did not (mp.sums.BrokenFamilies), none (the
// system's choice) otherwise. ok false: stopped.
func (t *task) familiesOf(ctx context.Context, row *engine.Row, mp *mirrorPrime) (fams []checks.Family, ok bool) {
	all := mirrorjob.Families(ctx, t.job.Client, t.job.Config.Checks.Families, mp.m.BaseURL)
	if all == nil {
		return nil, true // one family, or the system's choice: no request more
	}
	if g := t.job.Global; g != nil {
		if g.Acquire(ctx, 1) != nil {
			return nil, false
		}
		defer g.Release(1)
	}
	r, ok := mirrorjob.ReachOver(ctx, t.job.Client, mp.m.BaseURL, all, func(fctx context.Context, res checks.Result) {
		c := record.Check(res, 0, "", "HEAD", time.Now(), t.job.Config.Vantage)
		c.Routine, c.Family = !res.Kind.Failed(), string(checks.FamilyOf(fctx)) // reached: only counted
		mirrorjob.Record(fctx, row, t.job.Observer, t.run, mp.m, c, res)
	})
	if !ok {
		return nil, false
	}
	mp.found = r.Found
	if broken := r.Broken(all); len(broken) > 0 {
		mp.sums.BrokenFamilies = broken
		mp.sums.Note = joinNote(mp.sums.Note, t.brokenNote(mp, r.Pin))
		t.log.Warn("mirror broken over an address family: its files checked over another", "mirror", mp.m.Name,
			"broken", broken, "over", r.Pin, "family_policy", t.job.Config.State.FamilyPolicy)
		return []checks.Family{r.Pin}, true
	}
	return mirrorjob.FileFamilies(r.Found), true
}

// hashBeside marks, on a mirror checked over several families, the files
// whose bytes were found wrong before (a checksum mismatch, a body too
// large: over any family) to be verified in full over each family
// (primer.File.HashBeside), as a sweep does: a right size over the other
// family cannot clear them. Where that is unknown (the database away),
// every file is.
func (t *task) hashBeside(ctx context.Context, mp *mirrorPrime, files []primer.File) []primer.File {
	wrong, err := t.job.Store.MismatchedFiles(ctx, t.plan.Release.ID, mp.m.ID)
	if err != nil {
		t.log.Warn("could not read the files found wrong before; verifying every file in full over each family", "mirror", mp.m.Name, "err", err)
	}
	var out []primer.File
	for i, f := range files {
		if err == nil && !wrong[f.Path] {
			continue
		}
		if out == nil {
			out = slices.Clone(files) // files may be the plan's, every mirror's
		}
		out[i].HashBeside = true
	}
	if out == nil {
		return files
	}
	return out
}

// brokenNote says over which families mp's mirror is broken, why, and
// what state.family_policy makes of it.
func (t *task) brokenNote(mp *mirrorPrime, over checks.Family) string {
	parts := make([]string, len(mp.sums.BrokenFamilies))
	for i, f := range mp.sums.BrokenFamilies {
		parts[i] = fmt.Sprintf("broken over %s: %s", checks.Family(f).Label(), mp.found[f])
	}
	what := "offered still (state.family_policy degraded)"
	if t.job.Config.State.FamilyPolicy == config.PolicyDown {
		what = "counted as unreachable (state.family_policy down)"
	}
	return fmt.Sprintf("%s; files checked over %s; %s", strings.Join(parts, "; "), over.Label(), what)
}

// recordOutcome hands a file's outcome to the recorder — its check over
// the mirror's first family and, on a mirror checked over several, those
// over the others (o.Beside), each with its family — and returns the
// file's result: the first family's, or, when the file fails over one
// family alone, that failure, saying so (mirrorjob.JudgeFamilies). ok
// false: the recorder did not take it (the row's lease is gone).
func (t *task) recordOutcome(ctx context.Context, row *engine.Row, mp *mirrorPrime, o primer.Outcome) (checks.Result, checks.Family, bool) {
	rel, vantage := t.plan.Release.ID, t.job.Config.Vantage
	if len(o.Beside) == 0 {
		c := record.Check(o.Result, rel, o.Path, o.Method, o.CheckedAt, vantage)
		c.Family = string(o.Family)
		return o.Result, "", mirrorjob.Record(ctx, row, t.job.Observer, t.run, mp.m, c, o.Result)
	}
	outs := make([]mirrorjob.FamilyCheck, 0, 1+len(o.Beside))
	outs = append(outs, mirrorjob.FamilyCheck{Family: o.Family, Result: o.Result})
	for _, b := range o.Beside {
		outs = append(outs, mirrorjob.FamilyCheck{Family: b.Family, Result: b.Result})
	}
	v := mirrorjob.JudgeFamilies(outs)
	taken := true
	for j, fc := range outs {
		method, at := o.Method, o.CheckedAt
		if j > 0 {
			method, at = o.Beside[j-1].Method, o.Beside[j-1].CheckedAt
		}
		c := record.Check(fc.Result, rel, o.Path, method, at, vantage)
		v.Speak(&c, j, fc.Family)
		taken = mirrorjob.Record(checks.WithFamily(ctx, fc.Family), row, t.job.Observer, t.run, mp.m, c, fc.Result) && taken
	}
	return v.Result, v.FailedOver, taken
}

// judgeFamilies decides, across every mirror of the run, those broken
// over a family under state.family_policy down (rowResult.FamilyDown):
// down as an unreachable mirror (returned), unless the vantage point that
// checked it failed more than guard.max_down_fraction of the dual-stack
// mirrors over that family (decide.FamiliesSetAside: its own network),
// when they are marked as their files say (spared). verdicts are every
// dual-stack mirror's, by mirror id.
func (t *task) judgeFamilies(verdicts map[int]decide.FamilyVerdicts, pending []*mirrorPrime) (down, spared []*mirrorPrime) {
	all := make([]decide.FamilyVerdicts, 0, len(verdicts))
	for _, v := range verdicts {
		all = append(all, v)
	}
	aside := decide.FamiliesSetAside(all, mirrorjob.MaxDownFraction(t.job.Config, t.restricted))
	for k := range aside {
		t.log.Warn("vantage point failed most mirrors over one address family: not counting those verdicts (its own network?)",
			"vantage", k[0], "family", k[1])
	}
	for _, mp := range pending {
		broken := decide.BrokenFamilies(verdicts[mp.m.ID], 1, aside)
		if decide.FamilyCountsAgainst(t.job.Config.State.FamilyPolicy, broken) {
			mp.sums.State = "down"
			down = append(down, mp)
			continue
		}
		mp.sums.Note = joinNote(mp.sums.Note, "not counted against it: the vantage point failed most mirrors over that family (its own network?)")
		spared = append(spared, mp)
	}
	return down, spared
}

// familyVerdicts is what a row's reachability checks found over each
// family (rowResult.Families), as decide weighs it: vantage point →
// family → failed.
func familyVerdicts(res rowResult) decide.FamilyVerdicts {
	fams := make(map[string]bool, len(res.Families))
	for f, why := range res.Families {
		fams[f] = why != ""
	}
	return decide.FamilyVerdicts{res.Vantage: fams}
}

// failedOverNote says, in a mirror's sentry_log line, how many of its
// files fail over one family alone.
func failedOverNote(s *MirrorSums) string {
	var parts []string
	for _, f := range []checks.Family{checks.IPv4, checks.IPv6} {
		if n := s.FailedOver[string(f)]; n > 0 {
			files := "files"
			if n == 1 {
				files = "file"
			}
			parts = append(parts, fmt.Sprintf("%d %s failing %s", n, files, mirrorjob.OnlyOver(f)))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, ", ")
}

// joinNote adds b to a note.
func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
