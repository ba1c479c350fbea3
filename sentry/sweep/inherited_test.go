package sweep_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// TestSweepTakesOffRowsItNeverVerified: a mirror added after the release's
// prime, unreachable, with rows an earlier checker left active (one
// healthy, one the fallback), is decided by the first sweep that covers
// it: never verified by sentry, its rows go off at once (before its
// hysteresis judges it down) and its sentry_log row says why. A mirror
// the prime verified that goes down keeps its rows active (the fallback),
// as DESIGN section 2 says of a mirror judged down.
func TestSweepTakesOffRowsItNeverVerified(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	ctx, pool := context.Background(), w.Pool()
	w.Static(t, "good1")
	w.Static(t, "good2")
	flaky, flakyID := w.Static(t, "flaky")
	w.Prime(t)
	u, err := localmirror.DeadURL()
	if err != nil {
		t.Fatal(err)
	}
	dead := w.AddMirror(t, "inherited", u, nil)
	factory.LocationMirror(ctx, t, pool, &factory.LocationMirrorOpts{LocationID: w.LocWin, MirrorID: dead,
		Active: factory.Ptr(true), Healthy: factory.Ptr(true)})
	factory.LocationMirror(ctx, t, pool, &factory.LocationMirrorOpts{LocationID: w.LocLin, MirrorID: dead,
		Active: factory.Ptr(true), Healthy: factory.Ptr(false)})
	world.Failing(flaky).Store(true)

	w.Sweep(t, false)
	m := w.Marks(t)
	for _, l := range []int{w.LocWin, w.LocLin} {
		if m[l][dead] != world.Off {
			t.Errorf("location %d on the mirror sentry never verified, after one sweep: %+v, want off", l, m[l][dead])
		}
	}
	var reason string
	w.QueryRow(t, `SELECT reason FROM sentry_log WHERE mirror_id = $1`, []any{dead}, &reason)
	if !strings.Contains(reason, "never verified by sentry") {
		t.Errorf("sentry_log: %q, want the reason the rows went off", reason)
	}
	w.Sweep(t, false) // flaky goes down (state.down_after 2)
	for _, l := range []int{w.LocWin, w.LocLin} {
		if _, fallback := w.Offered(t, l); !slices.Equal(fallback, []int{flakyID}) {
			t.Errorf("location %d: fallback %v, want only the mirror verified before it went down", l, fallback)
		}
	}
}
