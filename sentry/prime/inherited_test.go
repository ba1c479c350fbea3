package prime_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestInheritedRowsOnAMirrorNeverVerified: an earlier checker left rows
// active on two dead mirrors. On the one sentry never verified anything
// on, the prime takes them off (active=false, healthy=false) and its
// sentry_log row says why ("never verified by sentry"): the redirector's
// fallback never reaches it. The one sentry verified before it went away
// keeps DESIGN section 2's contract: healthy=false, active unchanged. A
// mirror that comes up and is verified is offered as any other.
func TestInheritedRowsOnAMirrorNeverVerified(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	ctx, pool := context.Background(), w.Pool()
	for _, n := range []string{"good1", "good2", "good3"} {
		w.Static(t, n)
	}
	dead := map[string]int{}
	for _, n := range []string{"never-verified", "verified-before"} {
		u, err := localmirror.DeadURL()
		if err != nil {
			t.Fatal(err)
		}
		dead[n] = w.AddMirror(t, n, u, nil)
		factory.LocationMirror(ctx, t, pool, &factory.LocationMirrorOpts{LocationID: w.LocWin, MirrorID: dead[n],
			Active: factory.Ptr(true), Healthy: factory.Ptr(false)})
		factory.LocationMirror(ctx, t, pool, &factory.LocationMirrorOpts{LocationID: w.LocLin, MirrorID: dead[n],
			Active: factory.Ptr(true), Healthy: factory.Ptr(true)})
	}
	factory.MirrorVerified(ctx, t, pool, &factory.MirrorVerifiedOpts{MirrorID: dead["verified-before"]})

	rep := w.Prime(t)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("prime: %s (%s)", rep.Outcome, rep.Reason)
	}
	m := w.Marks(t)
	for _, l := range []int{w.LocWin, w.LocLin} {
		if got := m[l][dead["never-verified"]]; got != world.Off {
			t.Errorf("location %d on the mirror sentry never verified: %+v, want off", l, got)
		}
		if got := m[l][dead["verified-before"]]; got != world.Unhealthy {
			t.Errorf("location %d on the mirror verified before it went down: %+v, want active unchanged, unhealthy", l, got)
		}
		if _, fallback := w.Offered(t, l); !slices.Equal(fallback, []int{dead["verified-before"]}) {
			t.Errorf("location %d: the redirector's fallback is %v, want only the mirror verified before", l, fallback)
		}
	}
	var reason string
	w.QueryRow(t, `SELECT reason FROM sentry_log WHERE mirror_id = $1`, []any{dead["never-verified"]}, &reason)
	if !strings.Contains(reason, "2 rows left active by an earlier checker taken off: never verified by sentry") {
		t.Errorf("sentry_log of the mirror never verified: %q, want the rows taken off and why", reason)
	}
	v, err := w.Store.VerifiedMirrors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 4 {
		t.Errorf("verified mirrors %v: want the three good ones and the one verified before", v)
	}
}
