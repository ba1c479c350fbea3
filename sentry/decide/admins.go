package decide

import (
	"sort"
	"time"
)

// The decisions that keep mirror admins in the loop: certificate
// warnings, address families, maintenance windows and the return of a
// mirror whose offer was suspended.

// TLSWarning says whether a certificate valid until notAfter deserves a
// warning at now (checks.tls_expiry_warning: within): it is still valid,
// and ends within that long. An expired certificate is no warning but a
// failure (the check fails with tls).
func TLSWarning(notAfter, now time.Time, within time.Duration) bool {
	return now.Before(notAfter) && notAfter.Sub(now) < within
}

// InMaintenance says whether a maintenance window from since until until
// holds at now.
func InMaintenance(since, until, now time.Time) bool {
	return !since.IsZero() && !now.Before(since) && now.Before(until)
}

// RehashOnReturn says whether a sweep must hash a file of a mirror whose
// offer was suspended at suspendedAt (zero: it is not) before offering it
// again: it was not hashed since — strictly after the suspension; a hash
// at its very instant is not since, as for the verifications that count
// (store's verifiedSince, the rule of a returning mirror). Any sweep,
// light or deep, hashes such files once the window is over.
func RehashOnReturn(hashedAt, suspendedAt time.Time) bool {
	return !suspendedAt.IsZero() && !hashedAt.After(suspendedAt)
}

// Returned says whether a suspended mirror's return is complete after a
// sweep: the window is over, the mirror answered, and no file is left
// that was neither hashed since its suspension nor found missing or wrong
// (left counts those).
func Returned(inWindow, reachable bool, left int) bool {
	return !inWindow && reachable && left == 0
}

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
