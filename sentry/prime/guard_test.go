package prime_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestPrimeMassFailureGuard(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	_, good := w.Static(t, "good")
	var dead []int
	for _, name := range []string{"dead1", "dead2"} {
		u, err := localmirror.DeadURL()
		if err != nil {
			t.Fatal(err)
		}
		dead = append(dead, w.AddMirror(t, name, u, nil))
	}
	// The dead mirrors held the release: the guard must leave them so.
	for _, id := range dead {
		factory.LocationMirror(context.Background(), t, w.Pool(), &factory.LocationMirrorOpts{LocationID: w.LocWin, MirrorID: id,
			Active: factory.Ptr(true), Healthy: factory.Ptr(true)})
	}
	rep := w.Prime(t)
	if rep.Outcome != store.OutcomeGuarded || !strings.Contains(rep.Reason, "2 of 3 mirrors") {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
	}
	marks := w.Marks(t)
	for _, id := range dead {
		if marks[w.LocWin][id] != world.Good {
			t.Errorf("dead mirror %d marked down despite the guard: %+v", id, marks[w.LocWin][id])
		}
	}
	if marks[w.LocWin][good] != world.Good {
		t.Errorf("good mirror not marked")
	}
}
