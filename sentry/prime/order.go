package prime

import (
	"cmp"
	"slices"

	"github.com/mirrorsentry/sentry/sentry/store"
)

// The order a prime's mirrors are claimed in: capacity first. The
// redirector sends a mirror a share of the downloads in proportion to its
// rating, so the release reaches most of its users soonest when the
// mirrors rated highest are verified (and marked) first. Plan gives the
// work rows in this order, and every sentry on the database claims a
// run's rows in it (package engine: by run, then by position), so the
// order holds across instances too.

// CapacityFirst returns mirrors in the order a prime works them: by
// descending rating, ties by ascending id. mirrors is not changed.
func CapacityFirst(mirrors []store.Mirror) []store.Mirror {
	out := slices.Clone(mirrors)
	slices.SortStableFunc(out, func(a, b store.Mirror) int {
		if c := cmp.Compare(b.Rating, a.Rating); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}
