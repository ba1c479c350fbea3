package sweep_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// TestPerMirrorRateHolds: the requests a mirror sees are paced by its own
// cap (sentry_mirror_settings.max_rate) or, without one, by
// checks.per_mirror_rate, over any second, retries included; a prime and
// a sweep of the mirror at once share it (one row holds a mirror at a
// time).
func TestPerMirrorRateHolds(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	d.Config.Checks.PerMirrorRate = 8
	d.Config.Checks.PerMirrorConcurrency = 4
	own, ownID := w.Static(t, "own-cap")
	dflt, _ := w.Static(t, "default-cap")
	factory.MirrorSettings(context.Background(), t, w.Pool(), &factory.MirrorSettingsOpts{MirrorID: ownID, MaxRate: factory.Ptr(4.0)})
	type arrivals struct {
		mu sync.Mutex
		at []time.Time
	}
	seen := map[string]*arrivals{}
	for _, m := range []*localmirror.Server{own, dflt} {
		a := &arrivals{}
		seen[m.Name] = a
		m.HandleFunc(func(http.ResponseWriter, *http.Request) bool {
			a.mu.Lock()
			a.at = append(a.at, time.Now())
			a.mu.Unlock()
			return false
		})
	}
	w.Prime(t)
	w.Sweep(t, false)
	for name, limit := range map[string]int{"own-cap": 4, "default-cap": 8} {
		a := seen[name]
		a.mu.Lock()
		at := slices.Clone(a.at)
		a.mu.Unlock()
		slices.SortFunc(at, func(x, y time.Time) int { return x.Compare(y) })
		if len(at) <= limit+1 {
			t.Fatalf("%s saw %d requests: too few to see a pace of %d a second", name, len(at), limit)
		}
		most := 0
		for i := range at {
			n := 0
			for j := i; j < len(at) && at[j].Sub(at[i]) < time.Second; j++ {
				n++
			}
			most = max(most, n)
		}
		// A limiter of r a second with a burst of one lets r+1 requests
		// fall within one second (at its two ends).
		if most > limit+1 {
			t.Errorf("%s saw %d requests within one second, want at most %d (a cap of %d a second)", name, most, limit+1, limit)
		}
	}
}
