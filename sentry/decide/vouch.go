package decide

// NeverVerified is the reason given for the rows Vouch takes off: sentry
// never verified anything on their mirror.
const NeverVerified = "never verified by sentry"

// Vouch applies DESIGN section 2's "active=true is a promise" to a
// mirror's marks. sentry vouches for a row only by a Good mark, for files
// it verified on that mirror; rows it inherits from an earlier checker are
// decided by its first check of the mirror.
//
// On a mirror sentry had verified nothing on before this run
// (verifiedBefore false: unreachable since first seen, or never checked),
// every location of the releases the run covers (covered) that the run
// does not mark Good, Missing or Withheld (those set both flags anyway) is
// Unvouched: whatever an earlier checker left on its row, sentry cannot
// vouch for it, and the redirector's fallback (rows with healthy=false)
// would send users there. A mirror verified before keeps its marks as they
// are: judged down after it was verified, its rows keep their active flag
// (healthy=false only, the contract of section 2).
//
// The marks returned are those given, Trouble and Unjudged ones replaced,
// and one Unvouched mark for each covered location the marks do not name.
func Vouch(verifiedBefore bool, covered []int, marks []LocationMark) []LocationMark {
	if verifiedBefore || len(covered) == 0 {
		return marks
	}
	out := make([]LocationMark, 0, max(len(marks), len(covered)))
	named := make(map[int]bool, len(marks))
	for _, l := range marks {
		named[l.LocationID] = true
		switch l.Mark {
		case Good, Missing, Withheld, Unvouched:
			out = append(out, l)
		default:
			out = append(out, LocationMark{LocationID: l.LocationID, Mark: Unvouched})
		}
	}
	for _, id := range covered {
		if !named[id] {
			named[id] = true
			out = append(out, LocationMark{LocationID: id, Mark: Unvouched})
		}
	}
	return out
}
