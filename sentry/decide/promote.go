package decide

import (
	"fmt"
	"strings"
	"time"
)

// Going live: a bouncer alias (mirror_aliases: firefox-latest →
// Firefox-1.5) names the product the redirector serves for it, and moving
// it to a new release's product is how a release goes live. sentry moves
// an alias (releases.aliases) when every location of the new product has
// reached releases.promote_at of its rating-weighted eligible uptake (the
// mirrors the redirector can offer for the product, holding the location
// verified), and never to a release first primed before the one the
// alias names now.

// AliasTarget is what an alias names now.
type AliasTarget struct {
	// Product is mirror_aliases.related_product ("" when the alias has no
	// row yet).
	Product string
	// Known: Product is the alias's product of a release sentry primed
	// (its pattern with that release), first primed at FirstPrimed. A
	// target sentry does not know (another naming, a release from before
	// sentry) never holds a newer release back.
	Known       bool
	FirstPrimed time.Time
}

// AliasCandidate is a release's product an alias may be moved to.
type AliasCandidate struct {
	Product     string
	FirstPrimed time.Time
	// Uptakes are the eligible uptakes of the product's locations, one
	// each; nil for a location no mirror can be offered for.
	Uptakes []*float64
}

// Promotion is the decision on moving an alias to a candidate.
type Promotion struct {
	// Move: the alias is to name the candidate now. Already: it does.
	// Backwards: the candidate's release was first primed before the one
	// the alias names (and so is every older candidate's).
	Move, Already, Backwards bool
	// Why says why not, or why so.
	Why string
	// MinUptake is the lowest of the locations' uptakes (nil: a location
	// with none, or no location).
	MinUptake *float64
}

// uptakeSlack absorbs the rounding of a ratio of integers compared with a
// configured share: 4 of 5 is 0.8.
const uptakeSlack = 1e-9

// Promote decides whether an alias naming cur moves to cand: when every
// location of cand has an eligible uptake of at least threshold, and cand's
// release was not first primed before cur's (when sentry knows cur's).
// force moves it whatever the uptake and the order (an operator's rollback
// or early go-live), but never when it names cand already.
func Promote(cur AliasTarget, cand AliasCandidate, threshold float64, force bool) Promotion {
	p := Promotion{MinUptake: minUptake(cand.Uptakes)}
	switch {
	case cur.Product != "" && strings.EqualFold(cur.Product, cand.Product):
		p.Already, p.Why = true, fmt.Sprintf("already names %s", cur.Product)
		return p
	case force:
		p.Move, p.Why = true, "forced"
		return p
	case cur.Known && cand.FirstPrimed.Before(cur.FirstPrimed):
		p.Backwards = true
		p.Why = fmt.Sprintf("%s was first primed (%s) before %s, which it names now (%s): never backwards",
			cand.Product, stamp(cand.FirstPrimed), cur.Product, stamp(cur.FirstPrimed))
		return p
	case len(cand.Uptakes) == 0:
		p.Why = fmt.Sprintf("%s has no location", cand.Product)
		return p
	}
	low := 0
	for _, u := range cand.Uptakes {
		if u == nil || *u < threshold-uptakeSlack {
			low++
		}
	}
	if low > 0 {
		p.Why = fmt.Sprintf("%d of %d locations below %s of their eligible capacity (lowest %s)",
			low, len(cand.Uptakes), pct(&threshold), pct(p.MinUptake))
		return p
	}
	p.Move = true
	p.Why = fmt.Sprintf("every location at %s of its eligible capacity or more (lowest %s)", pct(&threshold), pct(p.MinUptake))
	return p
}

// minUptake is the lowest uptake, nil when one is nil or there is none.
func minUptake(us []*float64) *float64 {
	if len(us) == 0 {
		return nil
	}
	low := 2.0
	for _, u := range us {
		if u == nil {
			return nil
		}
		low = min(low, *u)
	}
	return &low
}

func pct(v *float64) string {
	if v == nil {
		return "none (no mirror can be offered)"
	}
	return fmt.Sprintf("%.1f%%", *v*100)
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }
