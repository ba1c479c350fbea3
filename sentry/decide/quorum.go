package decide

import (
	"slices"
	"sort"
)

// Quorum is how many vantage points must find a mirror failing for a
// sweep to count against it (Need), out of how many were seen (Seen).
type Quorum struct {
	Need, Seen int
}

// NewQuorum is state.quorum (configured), or, when that is 0, a majority
// of the vantage points seen.
func NewQuorum(configured, seen int) Quorum {
	q := Quorum{Need: configured, Seen: max(seen, 1)}
	if q.Need == 0 {
		q.Need = q.Seen/2 + 1
	}
	return q
}

// Verdicts are the vantage points' verdicts on one mirror in one sweep:
// vantage point → whether it found the mirror failing.
type Verdicts map[string]bool

// Counted is what the quorum made of one mirror's verdicts.
type Counted struct {
	// FailingFrom and CheckedFrom are the vantage points whose verdicts
	// counted that found the mirror failing, and all whose verdicts
	// counted; sorted.
	FailingFrom, CheckedFrom []string
	// Failed: at least Need vantage points found it failing: the sweep
	// counts against it.
	Failed bool
	// Partial: it failed from some vantage points, fewer than Need
	// (partially unreachable); the sweep does not count against it.
	Partial bool
}

// Apply counts the verdicts on every mirror. When more than one vantage
// point took part, one that failed more than maxDown of the mirrors it
// checked is taken to have its own network trouble and its verdicts are
// set aside (returned in ignored) — unless every vantage point did so,
// which is not one network's trouble: then the mass-failure guard decides.
func (q Quorum) Apply(mirrors []Verdicts, maxDown float64) (counted []Counted, ignored []string) {
	checked, failed := map[string]int{}, map[string]int{}
	for _, vs := range mirrors {
		for v, f := range vs {
			checked[v]++
			if f {
				failed[v]++
			}
		}
	}
	if len(checked) > 1 {
		for v, n := range checked {
			if failed[v] > 0 && float64(failed[v])/float64(n) > maxDown {
				ignored = append(ignored, v)
			}
		}
		sort.Strings(ignored)
		if len(ignored) == len(checked) {
			ignored = nil
		}
	}
	counted = make([]Counted, len(mirrors))
	for i, vs := range mirrors {
		c := Counted{FailingFrom: []string{}, CheckedFrom: []string{}}
		for v, f := range vs {
			if slices.Contains(ignored, v) {
				continue
			}
			c.CheckedFrom = append(c.CheckedFrom, v)
			if f {
				c.FailingFrom = append(c.FailingFrom, v)
			}
		}
		sort.Strings(c.FailingFrom)
		sort.Strings(c.CheckedFrom)
		c.Failed = len(c.FailingFrom) > 0 && len(c.FailingFrom) >= q.Need
		c.Partial = len(c.FailingFrom) > 0 && !c.Failed
		counted[i] = c
	}
	return counted, ignored
}
