package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/mirrorsentry/sentry/internal/bench/loadfarm"
	"github.com/mirrorsentry/sentry/sentry/prime"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// The bandwidth prime: a release of big files on many pull mirrors, with
// the farm's egress capped (sentry's side of the network, as in
// production, where the link — not the CPU — limits a prime that
// downloads every file from every mirror). The same prime is measured with
// verify.mode full (every byte of every file from every mirror: held to
// the bandwidth bound) and sampled (one byte per file primes each cache,
// 32 blocks per file verify it: held to the latency bound instead), in
// the same run.

// bandwidthSpec is the figure's release: files of size bytes.
func bandwidthSpec(files int, size int64) loadfarm.ReleaseSpec {
	return loadfarm.ReleaseSpec{Name: "bw", Dir: "/pub/bw/", Locations: 1, Langs: files, Size: size}
}

// bandwidthRun is one measured prime.
type bandwidthRun struct {
	mode               string
	child              childResult
	bytes, masterBytes int64
	requests           int64
	sampled            int // files verified by sampling
	err                error
}

// bandwidthPrime measures the figure and adds its rows to the report.
func bandwidthPrime(ctx context.Context, o Options, st *store.Store, dbURL, dir string, rep *report,
	logf func(string, ...any), child func(name string, args ...string) childResult) error {
	p := o.Params
	rel := bandwidthSpec(p.BandwidthFiles, p.BandwidthSize)
	farm, ids, err := cappedFarm(ctx, o, st, "bandwidth prime", rel, loadfarm.Options{
		Mirrors: p.BandwidthMirrors, Latency: p.BandwidthLatency, Seed: 4, Egress: p.BandwidthEgress}, logf)
	if err != nil {
		return err
	}
	defer farm.Close()
	runs := map[string]*bandwidthRun{}
	for _, mode := range []string{"full", "sampled"} {
		cfg, err := writeConfig(dir, "bandwidth-"+mode, dbURL, farm.Master, p.Concurrency, p.PerMirror,
			fmt.Sprintf("verify:\n  mode: %s\n", mode))
		if err != nil {
			return err
		}
		if err := firstPrime(ctx, st, farm, ids, rel.Name); err != nil {
			return err
		}
		logf("bandwidth prime: sentry prime, verify.mode %s", mode)
		r := &bandwidthRun{mode: mode, child: child("bandwidth-prime-"+mode, "prime", "--release", rel.Name, "--config", cfg, "--format", "json")}
		r.err = primeOK(r.child, p.BandwidthMirrors, p.BandwidthFiles)
		if r.err == nil {
			var pr prime.Report
			if err := json.Unmarshal(r.child.stdout, &pr); err == nil {
				for _, m := range pr.Mirrors {
					r.sampled += m.FilesSampled
				}
			}
			if want := map[string]int{"full": 0, "sampled": p.BandwidthMirrors * p.BandwidthFiles}[mode]; r.sampled != want {
				r.err = fmt.Errorf("%d files verified by sampling, want %d", r.sampled, want)
			}
		}
		fs, err := farm.Stats()
		if err != nil {
			return err
		}
		r.bytes, r.masterBytes, r.requests = fs.Bytes, fs.MasterBytes, fs.Requests
		logf("  %s, %s received (%s from the master), %d requests, cpu %s %v", r.child.wall.Round(time.Millisecond), mib(r.bytes),
			mib(r.masterBytes), r.requests, r.child.cpu.Round(time.Millisecond), r.err)
		runs[mode] = r
	}
	full, sampled := runs["full"], runs["sampled"]

	// The bounds. Every prime first reads the release from the master
	// (its block digests), through the same cap. Then, full: every byte of
	// every file from every mirror, through the cap. Sampled: per mirror,
	// a one-byte prime and a sample of the first file (one after the
	// other: they teach how the cache is primed), then the others, per
	// mirror concurrency at a time, two requests each; the mirrors in
	// rounds of ⌈concurrency / per mirror⌉; or what it received, through
	// the cap, if that takes longer.
	egress := p.BandwidthEgress
	relBytes := int64(p.BandwidthFiles) * p.BandwidthSize
	everything := relBytes * int64(p.BandwidthMirrors)
	masterTime := float64(relBytes) / egress
	slots := primeSlots(p.Concurrency, p.PerMirror)
	rounds := math.Ceil(float64(p.BandwidthMirrors) / float64(slots))
	lat := p.BandwidthLatency.Seconds()
	fullLatency := rounds * math.Ceil(float64(p.BandwidthFiles)/float64(p.PerMirror)) * 2 * lat
	fullBound := masterTime + max(float64(everything)/egress, fullLatency)
	sampledLatency := rounds * sampledMirrorTime(p.BandwidthFiles, p.PerMirror, p.BandwidthLatency)
	sampledBound := masterTime + max(float64(sampled.bytes-sampled.masterBytes)/egress, sampledLatency)

	setup := fmt.Sprintf("`sentry prime` of %d files × %s on %d pull mirrors (the farm's mirrors answer as caches that keep what they fetch: MISS, then HIT), %s latency per request, concurrency %d, %d per mirror, the farm's egress capped at %s (a token bucket shared by the master and every mirror)",
		p.BandwidthFiles, mib(p.BandwidthSize), p.BandwidthMirrors, p.BandwidthLatency, p.Concurrency, p.PerMirror, rate(egress))
	rep.add(figure{name: "prime bytes, full", value: mib(full.bytes), limit: mib(everything) + " (release × mirrors)",
		ratio: float64(full.bytes) / float64(everything), target: "≈ 1 (every byte from every mirror)",
		pass: full.err == nil && full.bytes >= everything,
		note: fmt.Sprintf("%s, verify.mode full: sentry received %s from the mirrors and %s from the master (the release, read once for its block digests), %d requests%s",
			setup, mib(full.bytes-full.masterBytes), mib(full.masterBytes), full.requests, errNote(full.err, 0))})
	rep.add(figure{name: "prime bytes, sampled", value: mib(sampled.bytes), limit: mib(everything) + " (release × mirrors)",
		ratio: float64(sampled.bytes) / float64(everything), target: "≤ 0.05",
		pass: sampled.err == nil && float64(sampled.bytes) <= 0.05*float64(everything),
		note: fmt.Sprintf("the same prime with verify.mode sampled (32 blocks of 16 KiB per file): %s from the mirrors (%.2f%% of release × mirrors: per file one byte to prime the cache and a multi-range sample, with its part headers) and %s from the master (%.2f%%); %d requests; %d of %d files verified by sampling%s",
			mib(sampled.bytes-sampled.masterBytes), 100*float64(sampled.bytes-sampled.masterBytes)/float64(everything), mib(sampled.masterBytes),
			100*float64(sampled.masterBytes)/float64(everything), sampled.requests, sampled.sampled, p.BandwidthMirrors*p.BandwidthFiles, errNote(sampled.err, 0))})
	rep.add(figure{name: "prime time, full", value: fmt.Sprintf("%.2f s", full.child.wall.Seconds()), limit: fmt.Sprintf("%.2f s (bandwidth)", fullBound),
		ratio: full.child.wall.Seconds() / fullBound, target: "≤ 1.5 (held to the bandwidth bound)",
		pass: full.err == nil && full.child.wall.Seconds()/fullBound <= 1.5,
		note: fmt.Sprintf("bound = the release from the master %s / %s = %.2fs + max(release × mirrors %s / %s = %.2fs, %g rounds of %d mirrors × ⌈%d/%d⌉ × 2 requests × %s = %.2fs); sentry %s CPU, peak RSS %s%s",
			mib(relBytes), rate(egress), masterTime, mib(everything), rate(egress), float64(everything)/egress, rounds, slots,
			p.BandwidthFiles, p.PerMirror, p.BandwidthLatency, fullLatency, full.child.cpu.Round(time.Millisecond), mib(full.child.maxRSS), errNote(full.err, 0))})
	rep.add(figure{name: "prime time, sampled", value: fmt.Sprintf("%.2f s", sampled.child.wall.Seconds()), limit: fmt.Sprintf("%.2f s (latency)", sampledBound),
		ratio: sampled.child.wall.Seconds() / sampledBound, target: "≤ 1.5",
		pass: sampled.err == nil && sampled.child.wall.Seconds()/sampledBound <= 1.5,
		note: fmt.Sprintf("bound = the release from the master %.2fs + max(%g rounds of %d mirrors × (2 requests for the first file, which teach how the cache is primed, + ⌈%d/%d⌉ × 2 for the others) × %s = %.2fs, the %s received from the mirrors / %s = %.2fs); %.1f× faster than full mode; sentry %s CPU, peak RSS %s%s",
			masterTime, rounds, slots, p.BandwidthFiles-1, p.PerMirror, p.BandwidthLatency, sampledLatency,
			mib(sampled.bytes-sampled.masterBytes), rate(egress), float64(sampled.bytes-sampled.masterBytes)/egress,
			full.child.wall.Seconds()/sampled.child.wall.Seconds(), sampled.child.cpu.Round(time.Millisecond), mib(sampled.child.maxRSS), errNote(sampled.err, 0))})
	return nil
}
