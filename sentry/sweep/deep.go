package sweep

import (
	"math"
	"sort"
	"time"

	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/store"
	"github.com/robfig/cron/v3"
)

// deepGap is the time between two deep sweeps by schedule.deep_sweep: the
// share of pairs a deep sweep hashes is derived from it and
// sweep.deep_period.
func deepGap(cfg *config.Config, now time.Time) time.Duration {
	sched, err := cron.ParseStandard(cfg.Schedule.DeepSweep)
	if err != nil {
		return cfg.Sweep.DeepPeriod.D()
	}
	n1 := sched.Next(now.UTC())
	return sched.Next(n1).Sub(n1)
}

// pickForHash chooses the pairs of one mirror a deep sweep hashes: every
// pair never hashed, flagged for a re-hash, or hashed so long ago that it
// would pass deep_period before the next deep sweep; then the pairs hashed
// longest ago, up to the share ceil(files × gap / period). Over deep_period
// every pair is hashed at least once.
func pickForHash(files []file, states map[store.FileKey]store.FileState, now time.Time, period, gap time.Duration) []bool {
	out := make([]bool, len(files)) // by index in files
	if gap <= 0 || gap >= period {
		for i := range out {
			out[i] = true
		}
		return out
	}
	share := int(math.Ceil(float64(len(files)) * float64(gap) / float64(period)))
	overdue := now.Add(-(period - gap))
	order := make([]int, len(files))
	for i := range order {
		order[i] = i
	}
	hashedAt := func(i int) time.Time { return states[files[i].key].HashedAt }
	sort.SliceStable(order, func(a, b int) bool { return hashedAt(order[a]).Before(hashedAt(order[b])) })
	picked := 0
	for _, i := range order {
		st, ok := states[files[i].key]
		must := !ok || st.HashedAt.IsZero() || st.Rehash || st.Void || !st.HashedAt.After(overdue)
		if must || picked < share {
			out[i] = true
			picked++
		}
	}
	return out
}
