package sentry_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestNothingToCheckFailsBeforeAnyMirror: a prime or sweep that would check
// nothing the redirector serves fails, recorded as failed with the reason,
// and no mirror is asked anything.
func TestNothingToCheckFailsBeforeAnyMirror(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		sweep bool
		set   func(t *testing.T, w *world.World)
		want  []string
	}{
		{"a typo in releases.products", false, func(t *testing.T, w *world.World) {
			w.Deps.Config.Releases.Products = []string{"Firefx-{release}"}
		}, []string{"matches no bouncer product", `"Firefx-{release}"`, `"Firefx-1.5"`, "1 product: Firefox-1.5"}},
		{"an empty bouncer database", false, func(t *testing.T, w *world.World) {
			w.Exec(t, `DELETE FROM mirror_locations; DELETE FROM mirror_product_langs; DELETE FROM mirror_products`)
		}, []string{"matches no bouncer product", "no product at all"}},
		{"products without locations", false, func(t *testing.T, w *world.World) {
			w.Exec(t, `DELETE FROM mirror_locations`)
		}, []string{"(Firefox-1.5) have no mirror_locations rows"}},
		{"no location maps onto the manifest", false, func(t *testing.T, w *world.World) {
			w.Exec(t, `UPDATE mirror_locations SET path = replace(path, '1.5/', '1.5/old/')`)
		}, []string{"none of the 2 locations of release 1.5 maps onto its manifest", "not in the manifest: old/"}},
		{"no active mirror", false, func(t *testing.T, w *world.World) {
			w.Exec(t, `UPDATE mirror_mirrors SET active = false`)
		}, []string{"no active mirror"}},
		{"an unknown --mirror", false, func(t *testing.T, w *world.World) {}, []string{`no active mirror named "nope"`, "active mirrors: good"}},
		{"a sweep before any prime", true, func(t *testing.T, w *world.World) {}, []string{"sentry knows no release yet"}},
		{"a sweep of inactive products only", true, func(t *testing.T, w *world.World) {
			w.Prime(t)
			w.Exec(t, `UPDATE mirror_products SET active = false`)
		}, []string{"of the releases sentry knows (1.5), none has a location of an active bouncer product"}},
		{"a sweep of an unknown --mirror", true, func(t *testing.T, w *world.World) {}, []string{`no active mirror named "nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := world.New(t, nil)
			d := w.Deps
			m, _ := w.Static(t, "good")
			tt.set(t, w)
			before := m.Stats().Requests
			var only []string
			if strings.Contains(tt.name, "--mirror") {
				only = []string{"nope"}
			}
			var err error
			if tt.sweep {
				_, err = sentry.Sweep(context.Background(), d, sentry.SweepOptions{Mirrors: only})
			} else {
				_, err = sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5", Mirrors: only})
			}
			if err == nil {
				t.Fatal("the run succeeded")
			}
			if only == nil && !errors.Is(err, release.ErrNothingToDo) {
				t.Errorf("error %v is not ErrNothingToDo", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if n := m.Stats().Requests - before; n != 0 {
				t.Errorf("the mirror was asked %d times", n)
			}
			if outcome, reason := w.LastRun(t); outcome != store.OutcomeFailed || reason != err.Error() {
				t.Errorf("run recorded %s %q, want failed with the error", outcome, reason)
			}
		})
	}
}

// TestRestrictedRuns: --mirror primes and sweeps the named mirror only, and
// one dead mirror alone is marked down (the guard's share does not apply
// to a restricted run).
func TestRestrictedRuns(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	a, _ := w.Static(t, "a")
	other, _ := w.Static(t, "other")
	rep, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5", Mirrors: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Mirrors) != 1 || rep.Mirrors[0].Name != "a" || rep.Mirrors[0].State != "ok" || other.Stats().Requests != 0 {
		t.Fatalf("prime --mirror a: %+v; other asked %d times", rep.Mirrors, other.Stats().Requests)
	}
	if a.Stats().Requests == 0 {
		t.Fatal("a was not asked")
	}
	world.Failing(a).Store(true)
	for range d.Config.State.DownAfter {
		srep, err := sentry.Sweep(context.Background(), d, sentry.SweepOptions{Mirrors: []string{"a"}})
		if err != nil {
			t.Fatal(err)
		}
		if srep.Outcome != store.OutcomeCompleted || len(srep.Mirrors) != 1 {
			t.Fatalf("sweep --mirror a: %s %s, %d mirrors", srep.Outcome, srep.Reason, len(srep.Mirrors))
		}
	}
	var state string
	if err := w.Pool().QueryRow(context.Background(), `SELECT state FROM sentry_mirror_state ms JOIN mirror_mirrors m ON m.id = ms.mirror_id
		WHERE m.name = 'a'`).Scan(&state); err != nil || state != "down" {
		t.Errorf("a after %d failed sweeps of it alone: %q %v", d.Config.State.DownAfter, state, err)
	}
	if other.Stats().Requests != 0 {
		t.Errorf("other was asked %d times by sweeps of a", other.Stats().Requests)
	}
}
