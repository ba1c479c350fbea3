package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestRangeWays: how a mirror's server answers ranges is saved under the
// learning check's lease, made only stricter (a way less strict, learned
// by another sentry at the same time, leaves it), read back, and
// forgotten on demand — as is how a mirror is primed — so that the next
// check learns again.
func TestRangeWays(t *testing.T) {
	st, mirror, _ := migrated(t)
	ctx := context.Background()
	other := factory.Mirror(ctx, t, st.Pool(), &factory.MirrorOpts{Name: "n", BaseURL: "http://n.example/pub"}).ID
	lost := false
	if err := st.SaveRangeWay(ctx, mirror, checks.RangeWay{MaxRanges: 10}, "lighttpd", fence{"a", &lost}); !errors.Is(err, store.ErrFenced) {
		t.Errorf("a way saved under a lost lease: %v", err)
	}
	if err := st.SaveRangeWay(ctx, mirror, checks.RangeWay{}, "nothing", nil); !errors.Is(err, store.ErrNoRangeWay) {
		t.Errorf("an empty way: %v", err)
	}
	read := func() map[int]store.RangeWay {
		t.Helper()
		ws, err := st.RangeWays(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ws
	}
	for _, step := range []struct {
		way    checks.RangeWay
		reason string
		want   checks.RangeWay
		why    string
	}{
		{checks.RangeWay{MaxRanges: 10}, "the first 10 of 32", checks.RangeWay{MaxRanges: 10}, "the first 10 of 32"},
		{checks.RangeWay{MaxRanges: 16}, "another sentry, less strict", checks.RangeWay{MaxRanges: 10}, "the first 10 of 32"},
		{checks.RangeWay{MaxRanges: 1}, "416 to several", checks.RangeWay{MaxRanges: 1}, "416 to several"},
		{checks.RangeWay{InFull: true}, "200 to one range", checks.RangeWay{InFull: true}, "200 to one range"},
		{checks.RangeWay{MaxRanges: 1}, "less strict again", checks.RangeWay{InFull: true}, "200 to one range"},
	} {
		if err := st.SaveRangeWay(ctx, mirror, step.way, step.reason, nil); err != nil {
			t.Fatal(err)
		}
		if got := read()[mirror]; got.Way != step.want || got.Reason != step.why || got.LearnedAt.IsZero() {
			t.Errorf("after saving %+v (%s): %+v, want %+v (%s)", step.way, step.reason, got, step.want, step.why)
		}
	}
	if err := st.SaveRangeWay(ctx, other, checks.RangeWay{MaxRanges: 3}, "other", nil); err != nil {
		t.Fatal(err)
	}
	if err := st.SavePriming(ctx, mirror, store.PrimeByRange, "a hit", nil); err != nil {
		t.Fatal(err)
	}

	// An admin forgets what was learned of one mirror.
	for _, forget := range []func(context.Context, int) (bool, error){st.ForgetRangeWay, st.ForgetPriming} {
		if ok, err := forget(ctx, mirror); err != nil || !ok {
			t.Errorf("forget: %v, %v; want forgotten", ok, err)
		}
		if ok, err := forget(ctx, mirror); err != nil || ok {
			t.Errorf("forget again: %v, %v; want nothing to forget", ok, err)
		}
	}
	if ws := read(); len(ws) != 1 || ws[other].Way != (checks.RangeWay{MaxRanges: 3}) {
		t.Errorf("after forgetting mirror %d: %+v; want only the other mirror's", mirror, ws)
	}
	if ps, err := st.Primings(ctx); err != nil || len(ps) != 0 {
		t.Errorf("primings after forgetting: %v, %v", ps, err)
	}
	if _, err := st.Pool().Exec(ctx, `DELETE FROM mirror_mirrors WHERE id = $1`, other); err != nil {
		t.Fatal(err)
	}
	if ws := read(); len(ws) != 0 {
		t.Errorf("a deleted mirror's way is kept: %+v", ws)
	}
}
