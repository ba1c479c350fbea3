package sweep

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/decide"
)

// A dual-stack mirror's address families judged: the vantage points'
// verdicts per family counted against the quorum (decide.BrokenFamilies),
// those of a vantage point whose own network fails a family set aside,
// and state.family_policy applied.

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
