package sweep_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
)

func TestWithdrawnFileIsOfferedNowhere(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	_, good1 := w.Static(t, "good1")
	_, good2 := w.Static(t, "good2")
	gone, goneID := w.Static(t, "gone")
	flaky, flakyID := w.Static(t, "flaky")
	down := world.Failing(flaky)
	w.Prime(t)
	withdrawn := "win32/de/Firefox Setup 1.5.exe"
	// One mirror answers 404 for the file, another goes down: its rows
	// unhealthy, the redirector's fallback.
	gone.Remove(w.Rel, withdrawn)
	down.Store(true)
	w.Sweep(t, false)
	w.Sweep(t, false)
	if first, fallback := w.Offered(t, w.LocWin); !slices.Equal(first, world.Sorted(good1, good2)) || !slices.Equal(fallback, []int{flakyID}) {
		t.Fatalf("before the withdrawal: offered %v, fallback %v; want the good mirrors, the down one as fallback", first, fallback)
	}

	// The file leaves the master and the manifest; its location stays.
	original := w.Rel.Files[withdrawn]
	w.Publish(withdrawn, nil)
	rep := w.Sweep(t, false)
	if first, fallback := w.Offered(t, w.LocWin); len(first)+len(fallback) != 0 {
		t.Errorf("withdrawn location offered on %v, fallback %v; want no mirror at all", first, fallback)
	}
	if len(rep.Withdrawn) != 1 || rep.Withdrawn[0].LocationID != w.LocWin || !strings.Contains(rep.Withdrawn[0].Reason, withdrawn) {
		t.Errorf("sweep report's withdrawn locations: %+v; want the win32 location, naming the file", rep.Withdrawn)
	}
	// No mirror is degraded by it: it is off on every one.
	if s := world.SweepSums(t, rep, "good1"); s.Condition != "up" || s.LocationsOff != 0 {
		t.Errorf("good1 after the withdrawal: %s with %d locations off %v; want up", s.Condition, s.LocationsOff, s.OffLocations)
	}
	if s := world.SweepSums(t, rep, "gone"); s.Condition != "up" {
		t.Errorf("gone (404 only for the withdrawn file): %s %v; want up", s.Condition, s.OffLocations)
	}
	// A re-prime reports it and offers it nowhere either.
	prep := w.Prime(t)
	if len(prep.Unresolved) != 1 || prep.Unresolved[0].LocationID != w.LocWin || !prep.Unresolved[0].Withdrawn {
		t.Errorf("prime's unresolved locations: %+v; want the withdrawn win32 location", prep.Unresolved)
	}
	if first, fallback := w.Offered(t, w.LocWin); len(first)+len(fallback) != 0 {
		t.Errorf("after the re-prime the withdrawn location is offered on %v, fallback %v", first, fallback)
	}
	if first, _ := w.Offered(t, w.LocLin); !slices.Equal(first, world.Sorted(good1, good2, goneID)) {
		t.Errorf("the linux location is offered on %v; want the three mirrors that are up", first)
	}

	// The file comes back as it was: withdrawn no more, hashed again (what
	// sentry knew of it was forgotten), offered where it is right.
	w.Publish(withdrawn, original)
	rep = w.Sweep(t, false)
	if len(rep.Withdrawn) != 0 {
		t.Errorf("withdrawn locations after the file came back: %+v", rep.Withdrawn)
	}
	if first, fallback := w.Offered(t, w.LocWin); !slices.Equal(first, world.Sorted(good1, good2)) || len(fallback) != 0 {
		t.Errorf("the file back: offered on %v, fallback %v; want the two good mirrors (one lacks it, one is down)", first, fallback)
	}
}
