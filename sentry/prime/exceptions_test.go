package prime_test

import (
	"context"
	"slices"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
)

// TestLanguageExceptionsNeverExcuse: the deployed redirector joins
// mirror_lmm_lang_exceptions but never filters on it, so a mirror with an
// exception for de is still sent de requests: a mirror lacking the de
// file is off for the location, exception or not, after the prime and
// after sweeps, and the redirector never picks it for it.
func TestLanguageExceptionsNeverExcuse(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	ctx, pool := context.Background(), w.Pool()
	_, goodID := w.Static(t, "good")
	lacks, lacksID := w.Static(t, "lacks-de")
	lacks.Remove(w.Rel, "win32/de/Firefox Setup 1.5.exe")
	// The admin's exception, on the row an earlier checker left active.
	lmm := factory.LocationMirror(ctx, t, pool, &factory.LocationMirrorOpts{LocationID: w.LocWin, MirrorID: lacksID,
		Active: factory.Ptr(true), Healthy: factory.Ptr(true)})
	factory.LangException(ctx, t, pool, &factory.LangExceptionOpts{LocationMirrorID: lmm, Language: "de"})

	check := func(when string) {
		t.Helper()
		m := w.Marks(t)
		if m[w.LocWin][lacksID] != world.Off {
			t.Errorf("%s: the win32 location on the mirror lacking de (with an exception for de): %+v, want off", when, m[w.LocWin][lacksID])
		}
		if m[w.LocLin][lacksID] != world.Good || m[w.LocWin][goodID] != world.Good {
			t.Errorf("%s: linux on lacks-de %+v, win32 on good %+v; want both good", when, m[w.LocLin][lacksID], m[w.LocWin][goodID])
		}
		if first, fallback := w.Offered(t, w.LocWin); !slices.Equal(first, []int{goodID}) || len(fallback) != 0 {
			t.Errorf("%s: the redirector offers win32 (every language) on %v, fallback %v; want only the good mirror", when, first, fallback)
		}
	}
	w.Prime(t)
	check("after the prime")
	w.Sweep(t, false)
	w.Sweep(t, true)
	check("after sweeps")
}
