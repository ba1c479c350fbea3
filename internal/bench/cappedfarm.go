package bench

import (
	"context"
	"math"
	"time"

	"github.com/mirrorsentry/sentry/internal/bench/loadfarm"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// The world of the primes measured through a capped egress (bandwidth.go,
// capacity.go): a farm of pull mirrors answering as caches that keep what
// they fetch, serving one release; every prime that release's first; and
// the least time a sampled prime spends, which both bounds are built on.

// cappedFarm starts a farm of fo.Mirrors pull caches serving rel (fo sets
// the latency, the seed and the egress cap), and seeds the bouncer's rows
// for it, the mirrors named after the release; it returns the farm and
// the mirrors' ids. what names the figure in the log.
func cappedFarm(ctx context.Context, o Options, st *store.Store, what string, rel loadfarm.ReleaseSpec, fo loadfarm.Options,
	logf func(string, ...any)) (*loadfarm.Remote, []int, error) {
	logf("%s: starting a farm of %d mirrors × %d files of %s, %s per request, egress capped at %s",
		what, fo.Mirrors, rel.Files(), mib(rel.Size), fo.Latency, rate(fo.Egress))
	fo.Releases, fo.CacheWords = []loadfarm.ReleaseSpec{rel}, true
	farm, err := loadfarm.Spawn(ctx, o.Self, []string{"farm"}, fo)
	if err != nil {
		return nil, nil, err
	}
	ids, err := seed(ctx, st, rel.Name, farm.Info, []loadfarm.ReleaseSpec{rel})
	if err != nil {
		farm.Close()
		return nil, nil, err
	}
	return farm, ids, nil
}

// firstPrime readies the database and the farm for a prime that is the
// release's first: no digest, no file state, no cache learned; the farm's
// mirrors and the release's product active; the farm's counters at zero.
func firstPrime(ctx context.Context, st *store.Store, farm *loadfarm.Remote, ids []int, release string) error {
	if err := forget(ctx, st); err != nil {
		return err
	}
	if err := activate(ctx, st, ids, release); err != nil {
		return err
	}
	return farm.Reset()
}

// primeSlots is how many mirrors a prime works at once: ⌈concurrency /
// per mirror⌉.
func primeSlots(concurrency, perMirror int) int {
	return max(1, (concurrency+perMirror-1)/perMirror)
}

// sampledMirrorTime is the least time, in seconds, a sampled prime spends
// on one mirror of files files, latency a request: a one-byte prime and a
// sample of the first file, one after the other (they teach how the cache
// is primed), then the others, perMirror at a time, two requests each.
func sampledMirrorTime(files, perMirror int, latency time.Duration) float64 {
	lat := latency.Seconds()
	return 2*lat + math.Ceil(float64(files-1)/float64(perMirror))*2*lat
}
