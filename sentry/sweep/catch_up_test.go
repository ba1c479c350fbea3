package sweep_test

import (
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
)

// TestFixedMissingFileOfferedAfterOneSweep: a mirror that lacked a file
// and now holds it is hashed and offered again by the next light sweep.
func TestFixedMissingFileOfferedAfterOneSweep(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	w.Static(t, "good")
	m, id := w.Static(t, "fixer")
	p := "linux-x86_64/de/firefox-1.5.tar.bz2"
	m.Remove(w.Rel, p)
	w.Prime(t)
	if got := w.Marks(t)[w.LocLin][id]; got != world.Off {
		t.Fatalf("after the prime: %+v, want the location off", got)
	}
	m.Put(w.Rel, p, w.Rel.Files[p])
	s := world.SweepSums(t, w.Sweep(t, false), "fixer")
	if s.Hashed != 1 || s.Failed != 0 {
		t.Errorf("light sweep: %+v; want the fixed file hashed", s)
	}
	if got := w.Marks(t)[w.LocLin][id]; got != world.Good {
		t.Errorf("after one light sweep: %+v, want the location offered again", got)
	}
}

// TestNewMirrorMarkedAfterOneSweep: a mirror added to mirror_mirrors after
// the prime gets its map rows for the live release at the next sweep —
// good, its files hashed — and, where sweep.catch_up_bytes does not cover
// them all, the rest withheld (rows, off) until later sweeps hash them.
func TestNewMirrorMarkedAfterOneSweep(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	w.Static(t, "old")
	w.Prime(t)
	_, id := w.Static(t, "new")
	s := world.SweepSums(t, w.Sweep(t, false), "new")
	if s.Hashed != 4 {
		t.Errorf("first sweep of the new mirror: %+v, want its 4 files hashed", s)
	}
	if m := w.Marks(t); m[w.LocWin][id] != world.Good || m[w.LocLin][id] != world.Good {
		t.Errorf("new mirror after one sweep: win32 %+v, linux %+v; want both good", m[w.LocWin][id], m[w.LocLin][id])
	}

	// A budget of one byte: one file a sweep.
	d.Config.Sweep.CatchUpBytes = 1
	_, late := w.Static(t, "late")
	s = world.SweepSums(t, w.Sweep(t, false), "late")
	m := w.Marks(t)
	if s.Hashed != 1 || s.Withheld != 2 || m[w.LocWin][late] != world.Off || m[w.LocLin][late] != world.Off {
		t.Errorf("first sweep within a tiny budget: %+v, marks %+v %+v; want one file hashed, both locations withheld (rows, off)",
			s, m[w.LocWin][late], m[w.LocLin][late])
	}
	for range 3 {
		w.Sweep(t, false)
	}
	if m := w.Marks(t); m[w.LocWin][late] != world.Good || m[w.LocLin][late] != world.Good {
		t.Errorf("after four sweeps of a file each: %+v %+v, want both good", m[w.LocWin][late], m[w.LocLin][late])
	}
}
