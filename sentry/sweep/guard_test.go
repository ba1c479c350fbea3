package sweep_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestSweepGuardHoldsBackMassFailure(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	_, good := w.Static(t, "good")
	var ids []int
	var toggles []*atomic.Bool
	for _, name := range []string{"a", "b"} {
		s, id := w.Static(t, name)
		toggles = append(toggles, world.Failing(s))
		ids = append(ids, id)
	}
	w.Prime(t)
	for _, tg := range toggles {
		tg.Store(true)
	}
	for i := 0; i < 3; i++ {
		rep := w.Sweep(t, false)
		if rep.Outcome != store.OutcomeGuarded || !strings.Contains(rep.Reason, "2 of 3 mirrors") {
			t.Fatalf("sweep %d: outcome %s: %s", i+1, rep.Outcome, rep.Reason)
		}
	}
	marks := w.Marks(t)
	for _, id := range append(ids, good) {
		if marks[w.LocWin][id] != world.Good {
			t.Errorf("mirror %d marked down under the guard: %+v", id, marks[w.LocWin][id])
		}
	}
	var streak int
	if err := w.Pool().QueryRow(context.Background(), `SELECT max(fail_streak) FROM sentry_mirror_state`).Scan(&streak); err != nil {
		t.Fatal(err)
	}
	if streak != 0 {
		t.Errorf("guarded failures counted towards hysteresis: fail streak %d", streak)
	}
}
