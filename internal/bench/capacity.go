package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mirrorsentry/sentry/internal/bench/loadfarm"
	sentryreport "github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// The sampled prime to capacity: the seed's clock, measured. A release of
// CapacityFiles files primed with verify.mode sampled on CapacityMirrors
// pull mirrors that answer after a latency, through a capped egress; the
// mirrors' ratings are skewed (a few take most downloads) and in no order
// of their ids. What is measured is what `sentry report --release` says:
// the time from the prime's start until 90% and until 100% of the
// rating-weighted capacity the redirector can offer held every file.
//
// The bound of a share is what any order of priming needs at least: the k
// highest-rated mirrors that make the share must all be done, at most
// ⌈concurrency / per mirror⌉ at a time, each needing its files' requests
// one latency each (two per file, the one-byte prime and the sample, per
// mirror concurrency at a time, the first file alone: it teaches how the
// cache is primed); and the bytes those k mirrors send, with the master's
// copy of the release, must cross the capped egress. Capacity first
// (descending rating) is what lets a prime approach the bound of 90%.

// capacitySpec is the figure's release.
func capacitySpec(files int, size int64) loadfarm.ReleaseSpec {
	if files%langsPer == 0 {
		return loadfarm.ReleaseSpec{Name: "cap", Dir: "/pub/cap/", Locations: files / langsPer, Langs: langsPer, Size: size}
	}
	return loadfarm.ReleaseSpec{Name: "cap", Dir: "/pub/cap/", Locations: 1, Langs: files, Size: size}
}

// capacityRatings are the mirrors' ratings: the i-th highest is
// 1000·0.98^i (at least 1), dealt to the mirrors in a fixed random order.
func capacityRatings(n int) []int {
	ratings := make([]int, n)
	for i := range ratings {
		ratings[i] = max(1, int(math.Round(1000*math.Pow(0.98, float64(i)))))
	}
	r := rand.New(rand.NewPCG(27, 5))
	r.Shuffle(n, func(i, j int) { ratings[i], ratings[j] = ratings[j], ratings[i] })
	return ratings
}

// mirrorsFor is how many of the highest-rated mirrors make share of the
// summed ratings.
func mirrorsFor(ratings []int, share float64) int {
	sorted := slices.Clone(ratings)
	slices.SortFunc(sorted, func(a, b int) int { return b - a })
	total := 0
	for _, r := range sorted {
		total += r
	}
	sum := 0
	for i, r := range sorted {
		sum += r
		if float64(sum) >= share*float64(total)-1e-9 {
			return i + 1
		}
	}
	return len(sorted)
}

// capacityPrime measures the figure and adds its rows to the report.
func capacityPrime(ctx context.Context, o Options, st *store.Store, dbURL, dir string, rep *report,
	logf func(string, ...any), child func(name string, args ...string) childResult) error {
	p := o.Params
	rel := capacitySpec(p.CapacityFiles, p.CapacitySize)
	farm, ids, err := cappedFarm(ctx, o, st, "capacity prime", rel, loadfarm.Options{
		Mirrors: p.CapacityMirrors, Latency: p.CapacityLatency, Seed: 5, Egress: p.CapacityEgress}, logf)
	if err != nil {
		return err
	}
	defer farm.Close()
	ratings := capacityRatings(len(ids))
	// Offered by the redirector: a region, http:// (the farm's).
	if _, err := st.Pool().Exec(ctx, `UPDATE mirror_mirrors m SET rating = r.rating
		FROM unnest($1::int[], $2::int[]) AS r(id, rating) WHERE m.id = r.id`, ids, ratings); err != nil {
		return err
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO geoip_mirror_region_map (mirror_id, region_id)
		SELECT unnest($1::int[]), 1 ON CONFLICT DO NOTHING`, ids); err != nil {
		return err
	}
	cfg, err := writeConfig(dir, "capacity", dbURL, farm.Master, p.Concurrency, p.PerMirror,
		fmt.Sprintf("verify:\n  mode: sampled\n  block_size: %d\n  sample_blocks: %d\n", p.CapacityBlock, p.CapacitySample))
	if err != nil {
		return err
	}
	if err := firstPrime(ctx, st, farm, ids, rel.Name); err != nil {
		return err
	}
	logf("capacity prime: sentry prime, verify.mode sampled")
	pr := child("capacity-prime", "prime", "--release", rel.Name, "--config", cfg, "--format", "json")
	prErr := primeOK(pr, p.CapacityMirrors, p.CapacityFiles)
	fs, err := farm.Stats()
	if err != nil {
		return err
	}
	r, err := sentryreport.New(st.Pool(), nil).Release(ctx, rel.Name)
	if err != nil {
		return err
	}
	c := r.Capacity
	// When mirrors were first asked, and when the last check was made,
	// from the prime's start: where the time went.
	var firstCheck, lastCheck float64
	if err := st.Pool().QueryRow(ctx, `SELECT extract(epoch FROM min(c.checked_at) - r.started_at), extract(epoch FROM max(c.checked_at) - r.started_at)
		FROM sentry_checks c JOIN sentry_runs r ON r.id = c.run_id WHERE r.kind = 'prime' GROUP BY r.started_at`).Scan(&firstCheck, &lastCheck); err != nil {
		return err
	}
	// How long a mirror's own checks took, on average: against the
	// bound's time per mirror, what the rest (claiming, marking) cost.
	var span float64
	if err := st.Pool().QueryRow(ctx, `SELECT avg(s) FROM (SELECT extract(epoch FROM max(checked_at) - min(checked_at)) AS s
		FROM sentry_checks GROUP BY mirror_id) m`).Scan(&span); err != nil {
		return err
	}
	times := map[float64]*float64{}
	for _, t := range c.Times {
		times[t.Share] = t.Seconds
	}
	if c.EligibleMirrors != p.CapacityMirrors && prErr == nil {
		prErr = fmt.Errorf("%d eligible mirrors, want %d", c.EligibleMirrors, p.CapacityMirrors)
	}
	logf("  %s wall, %s CPU, %s received (%s from the master), %d requests; first check at %.2f s, last at %.2f s, a mirror's checks %.2f s; capacity 90%% at %v s, 100%% at %v s %v",
		pr.wall.Round(time.Millisecond), pr.cpu.Round(time.Millisecond), mib(fs.Bytes), mib(fs.MasterBytes), fs.Requests,
		firstCheck, lastCheck, span, fmtSecs(times[0.9]), fmtSecs(times[1]), prErr)

	// The bounds.
	slots := primeSlots(p.Concurrency, p.PerMirror)
	perMirror := sampledMirrorTime(p.CapacityFiles, p.PerMirror, p.CapacityLatency)
	mirrorBytes := float64(fs.Bytes-fs.MasterBytes) / float64(p.CapacityMirrors)
	relBytes := float64(int64(p.CapacityFiles) * p.CapacitySize)
	firstFile := float64(p.CapacitySize) / p.CapacityEgress
	bound := func(share float64) (k int, latency, bytes, b float64) {
		k = mirrorsFor(ratings, share)
		latency = math.Ceil(float64(k)/float64(slots)) * perMirror
		bytes = (float64(k)*mirrorBytes + relBytes) / p.CapacityEgress
		return k, latency, bytes, firstFile + max(latency, bytes)
	}
	setup := fmt.Sprintf("the first mirror was checked %.2f s after the prime's start, the last check made at %.2f s, a mirror's checks spanning %.2f s on average; `sentry prime` with verify.mode sampled (`verify.block_size` %s, `verify.sample_blocks` %d) of %d files × %s on %d pull mirrors (caches that keep what they fetch: MISS, then HIT) of ratings 1000·0.98^i dealt in a random order of their ids, %s latency per request, concurrency %d, %d per mirror, `checks.per_mirror_rate` far above what the farm answers, the farm's egress capped at %s; the times are `sentry report --release`'s (from the first prime's start to the first verification of the last file of the mirrors that make the share); sentry %s wall, %s CPU, peak RSS %s; the farm sent %s (%s of it the master's copy) in %d requests",
		firstCheck, lastCheck, span, mib(p.CapacityBlock), p.CapacitySample, p.CapacityFiles, mib(p.CapacitySize), p.CapacityMirrors, p.CapacityLatency,
		p.Concurrency, p.PerMirror, rate(p.CapacityEgress), pr.wall.Round(time.Millisecond), pr.cpu.Round(time.Millisecond), mib(pr.maxRSS),
		mib(fs.Bytes), mib(fs.MasterBytes), fs.Requests)
	for _, share := range []float64{0.9, 1} {
		k, latency, bytes, b := bound(share)
		got := times[share]
		name := fmt.Sprintf("capacity prime, %.0f%%", share*100)
		if got == nil {
			rep.add(figure{name: name, value: "not reached", limit: fmt.Sprintf("%.2f s", b), target: "≤ 1.5",
				note: fmt.Sprintf("%s%s", setup, errNote(fmt.Errorf("%.0f%% of the capacity was never reached", share*100), 0))})
			continue
		}
		ratio := *got / b
		note := fmt.Sprintf("the %d highest-rated mirrors make %.0f%% of the rating; bound = the first file from the master %s / %s = %.2fs + max(⌈%d / %d slots⌉ rounds × (2 requests for the first file + ⌈%d/%d⌉ × 2 for the others) × %s = %.2fs, (%d mirrors × %s each + the release from the master %s) / %s = %.2fs)",
			k, share*100, mib(p.CapacitySize), rate(p.CapacityEgress), firstFile, k, slots, p.CapacityFiles-1, p.PerMirror, p.CapacityLatency,
			latency, k, mib(int64(mirrorBytes)), mib(int64(relBytes)), rate(p.CapacityEgress), bytes)
		if share == 0.9 {
			note += "; " + setup
		}
		rep.add(figure{name: name, value: fmt.Sprintf("%.2f s", *got), limit: fmt.Sprintf("%.2f s", b), ratio: ratio,
			target: "≤ 1.5", pass: prErr == nil && ratio <= 1.5, note: note + errNote(prErr, 0)})
	}
	return nil
}

func fmtSecs(v *float64) string {
	if v == nil {
		return "never"
	}
	return fmt.Sprintf("%.2f", *v)
}
