package decide

import "sort"

// FamilyVerdicts are, for one mirror in one sweep, the vantage points'
// verdicts per address family: vantage point → family → whether the
// mirror failed over it. Only the families a vantage point checked (those
// of the mirror's addresses it can reach, checks.families) are there, and
// only for mirrors with addresses of more than one.
type FamilyVerdicts map[string]map[string]bool

// FamiliesSetAside finds the (vantage point, family) pairs whose verdicts
// are set aside for a sweep, their own network's trouble more likely than
// the mirrors': those that failed more than maxDown of the mirrors they
// checked over the family — as the mass-failure guard does for a whole
// vantage point (a sentry whose IPv6 route is gone must not find every
// mirror broken over IPv6). Keys are [vantage, family].
func FamiliesSetAside(mirrors []FamilyVerdicts, maxDown float64) map[[2]string]bool {
	checked, failed := map[[2]string]int{}, map[[2]string]int{}
	for _, m := range mirrors {
		for v, fams := range m {
			for f, bad := range fams {
				k := [2]string{v, f}
				checked[k]++
				if bad {
					failed[k]++
				}
			}
		}
	}
	out := map[[2]string]bool{}
	for k, n := range checked {
		if failed[k] > 0 && float64(failed[k])/float64(n) > maxDown {
			out[k] = true
		}
	}
	return out
}

// BrokenFamilies are the families a mirror is broken over in a sweep:
// failed over it from at least need of the vantage points that checked it
// over that family (the quorum), while the mirror was reached over
// another family from at least one vantage point. Verdicts set aside do
// not count. Sorted; nil when none.
func BrokenFamilies(v FamilyVerdicts, need int, aside map[[2]string]bool) []string {
	failing := map[string]int{}
	reached := false
	for vantage, fams := range v {
		for f, bad := range fams {
			if aside[[2]string{vantage, f}] {
				continue
			}
			if bad {
				failing[f]++
			} else {
				reached = true
			}
		}
	}
	if !reached {
		return nil // failing over every family is being unreachable: the quorum decides
	}
	var out []string
	for f, n := range failing {
		if n >= max(need, 1) {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

// FamilyCountsAgainst says whether a sweep in which the mirror was broken
// over the families broken counts against it (state.family_policy):
// under "down" it does, as an unreachable mirror's; under "degraded" the
// mirror stays offered and is reported.
func FamilyCountsAgainst(policy string, broken []string) bool {
	return policy == "down" && len(broken) > 0
}
