// Package bench is `make bench`: it builds a throwaway world (a PostgreSQL
// cluster, load farms in child processes, the bouncer rows), measures every
// figure of BENCHMARKS.md against a limit measured in the same run, and
// writes the report. It is a program's body (internal/bench/cmd/sentry-bench),
// never part of `make test`.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mirrorsentry/sentry/internal/bench/loadfarm"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/demo/pgcluster"
	"github.com/mirrorsentry/sentry/sentry/manifest"
	"github.com/mirrorsentry/sentry/sentry/prime"
	"github.com/mirrorsentry/sentry/sentry/record"
	"github.com/mirrorsentry/sentry/sentry/store"
	"github.com/mirrorsentry/sentry/sentry/sweep"
)

// Params are the sizes of the benchmarks. Defaults are the issue's.
type Params struct {
	Concurrency, PerMirror int // checks.concurrency and per_mirror_concurrency

	LightMirrors, LightFiles int // light sweep: 100 × 2,000
	LightRounds              int // light sweep: rounds of bare client then sentry
	SmallMirrors, BigMirrors int // seed scale: 50 and 500 mirrors × SeedFiles
	SeedFiles                int // 4,000
	DeepMirrors, DeepFiles   int // deep verification: 20 × 200 × DeepSize
	DeepSize                 int64
	PrimeMirrors, PrimeFiles int // release prime: 50 mirrors, 1,000 files of PrimeSize
	PrimeSize                int64
	PrimeLatency             time.Duration
	PrimeConcurrency         int // checks.concurrency of the prime
	RecordChecks             int
	RecordUnchanged          int // unchanged checks through the recorder

	// Database growth: GrowthSweeps unchanged sweeps of GrowthMirrors ×
	// GrowthFiles, pruned with a retention of five sweeps.
	GrowthMirrors, GrowthFiles, GrowthSweeps int
	// Polite sweeps: PoliteFiles on an rsync mirror and on an HTTP mirror
	// capped at PoliteRate requests per second.
	PoliteFiles int
	PoliteRate  float64

	// Shared sweep: 1..SharedInstances `sentry run` daemons share the first
	// scheduled sweep of SharedMirrors × SharedFiles (HEAD) on a farm
	// answering after SharedLatency, each daemon with SharedConcurrency
	// and SharedPerMirror.
	SharedMirrors, SharedFiles         int
	SharedLatency                      time.Duration
	SharedConcurrency, SharedPerMirror int
	SharedInstances                    int

	// Bandwidth prime: BandwidthFiles files of BandwidthSize on
	// BandwidthMirrors pull mirrors answering after BandwidthLatency, the
	// farm's egress capped at BandwidthEgress bytes a second; primed with
	// verify.mode full, then sampled.
	BandwidthMirrors, BandwidthFiles int
	BandwidthSize                    int64
	BandwidthLatency                 time.Duration
	BandwidthEgress                  float64

	// Capacity prime: CapacityFiles files of CapacitySize on
	// CapacityMirrors pull mirrors of skewed ratings answering after
	// CapacityLatency, the farm's egress capped at CapacityEgress, primed
	// with verify.mode sampled (CapacitySample blocks of CapacityBlock):
	// the time to 90% and 100% of the rating-weighted capacity.
	CapacityMirrors, CapacityFiles int
	CapacitySize, CapacityBlock    int64
	CapacitySample                 int
	CapacityLatency                time.Duration
	CapacityEgress                 float64
}

// Figures are the names -only selects from, in the order they run.
var Figures = []string{"recording", "light-sweep", "memory", "growth", "polite", "deep-verification", "release-prime", "bandwidth-prime", "capacity-prime", "shared-sweep"}

// DefaultParams are the sizes.
func DefaultParams() Params {
	return Params{
		Concurrency: 64, PerMirror: 4,
		LightMirrors: 100, LightFiles: 2000, LightRounds: 5,
		SmallMirrors: 50, BigMirrors: 500, SeedFiles: 4000,
		DeepMirrors: 20, DeepFiles: 200, DeepSize: 1 << 20,
		PrimeMirrors: 50, PrimeFiles: 1000, PrimeSize: 64 << 10, PrimeLatency: 20 * time.Millisecond,
		PrimeConcurrency: 200,
		RecordChecks:     300_000,
		RecordUnchanged:  2_000_000,
		GrowthMirrors:    20, GrowthFiles: 200, GrowthSweeps: 100,
		PoliteFiles: 600, PoliteRate: 100,
		SharedMirrors: 24, SharedFiles: 100, SharedLatency: 40 * time.Millisecond,
		SharedConcurrency: 8, SharedPerMirror: 4, SharedInstances: 3,
		BandwidthMirrors: 100, BandwidthFiles: 4, BandwidthSize: 16 << 20, BandwidthLatency: 100 * time.Millisecond,
		BandwidthEgress: 256 << 20,
		CapacityMirrors: 200, CapacityFiles: 200, CapacitySize: 1 << 20, CapacityBlock: 4 << 10, CapacitySample: 16,
		CapacityLatency: 30 * time.Millisecond, CapacityEgress: 128 << 20,
	}
}

// QuickParams are small sizes for trying the harness out.
func QuickParams() Params {
	p := DefaultParams()
	p.LightMirrors, p.LightFiles, p.SmallMirrors, p.BigMirrors, p.SeedFiles = 20, 200, 10, 40, 400
	p.RecordUnchanged, p.GrowthSweeps, p.PoliteFiles = 200_000, 20, 300
	p.DeepMirrors, p.DeepFiles = 4, 100
	p.PrimeMirrors, p.PrimeFiles = 10, 200
	p.RecordChecks = 40_000
	p.SharedMirrors, p.SharedFiles = 12, 60
	p.BandwidthMirrors, p.BandwidthFiles = 40, 2
	p.CapacityMirrors, p.CapacityFiles = 40, 40
	return p
}

// Options configure Run.
type Options struct {
	Params Params
	Sentry string // the sentry binary to measure
	Self   string // this program (re-executed as the farm)
	Out    string // where to write the report (BENCHMARKS.md)
	Micro  string // file holding `go test -bench` output to include, or ""
	Log    io.Writer
	// Command is how the run was started, for the report.
	Command string
	// Profile, when set, is a directory where each sentry child writes a
	// CPU profile (SENTRY_CPUPROFILE), for `go tool pprof`.
	Profile string
	// Quick says the sizes are QuickParams (the report says so).
	Quick bool
	// Args are the program's arguments, for the report.
	Args string
	// Only, when not empty, names the figures to measure (of Figures);
	// the others are left out of the report.
	Only []string
}

// langsPer is the languages of every product: files = locations × langs.
const langsPer = 100

func spec(name string, files int, size int64) loadfarm.ReleaseSpec {
	return loadfarm.ReleaseSpec{Name: name, Dir: "/pub/" + name + "/", Locations: files / langsPer, Langs: langsPer, Size: size}
}

// Run measures everything and writes the report.
func Run(ctx context.Context, o Options) error {
	p := o.Params
	logf := func(format string, args ...any) { fmt.Fprintf(o.Log, "bench: "+format+"\n", args...) }
	benchStart := time.Now()
	for _, name := range o.Only {
		if !slices.Contains(Figures, name) {
			return fmt.Errorf("no figure %q: the figures are %s", name, strings.Join(Figures, ", "))
		}
	}
	want := func(name string) bool { return len(o.Only) == 0 || slices.Contains(o.Only, name) }
	rep := &report{params: p, command: o.Command, quick: o.Quick, args: o.Args, machine: machine(), only: o.Only}

	dir, err := os.MkdirTemp("", "sentry-benchcfg-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	childLog, err := os.Create(filepath.Join(dir, "sentry.log"))
	if err != nil {
		return err
	}

	logf("starting a throwaway PostgreSQL cluster")
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Prefix: "sentry-bench-", Log: nil})
	if err != nil {
		return fmt.Errorf("%w (%s)", err, pgcluster.InstallHint())
	}
	defer cluster.Close()
	defer cluster.TeardownOnSignal()()
	dbURL, err := cluster.CreateDB(ctx, "bouncer")
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, dbURL, 4)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		return err
	}

	light := spec("light", p.LightFiles, 4<<10)
	seedRel := spec("seed", p.SeedFiles, 4<<10)
	growthRel := spec("growth", p.GrowthFiles, 4<<10)
	deep := spec("deep", p.DeepFiles, p.DeepSize)
	primeRel := spec("prime", p.PrimeFiles, p.PrimeSize)
	var (
		farm, slow                *loadfarm.Remote
		mirrorIDs, slowIDs        []int
		lightEntries, deepEntries []manifestEntry
		vantage                   = "default"
		sweepCfg, primeCfg        string
	)
	if want("recording") || want("light-sweep") || want("memory") || want("deep-verification") || want("growth") {
		nMirrors := max(p.LightMirrors, p.BigMirrors, p.SmallMirrors, p.DeepMirrors, p.GrowthMirrors)
		rels := []loadfarm.ReleaseSpec{light, deep, seedRel, growthRel}
		logf("starting the load farm (%d mirrors)", nMirrors)
		farm, err = loadfarm.Spawn(ctx, o.Self, []string{"farm"}, loadfarm.Options{
			Mirrors: nMirrors, Releases: rels, Seed: 1})
		if err != nil {
			return err
		}
		defer farm.Close()
		if mirrorIDs, err = seed(ctx, st, "m", farm.Info, rels); err != nil {
			return err
		}
		if lightEntries, err = saveRelease(ctx, st, farm.Info, light); err != nil {
			return err
		}
		if deepEntries, err = saveRelease(ctx, st, farm.Info, deep); err != nil {
			return err
		}
		for _, r := range []loadfarm.ReleaseSpec{seedRel, growthRel} {
			if _, err = saveRelease(ctx, st, farm.Info, r); err != nil {
				return err
			}
		}
		if sweepCfg, err = writeConfig(dir, "sweep", dbURL, farm.Master, p.Concurrency, p.PerMirror, ""); err != nil {
			return err
		}
	}
	if want("release-prime") {
		logf("starting the latency-bound load farm (%d mirrors)", p.PrimeMirrors)
		slow, err = loadfarm.Spawn(ctx, o.Self, []string{"farm"}, loadfarm.Options{
			Mirrors: p.PrimeMirrors, Releases: []loadfarm.ReleaseSpec{primeRel}, Latency: p.PrimeLatency, Seed: 2})
		if err != nil {
			return err
		}
		defer slow.Close()
		if slowIDs, err = seed(ctx, st, "slow", slow.Info, []loadfarm.ReleaseSpec{primeRel}); err != nil {
			return err
		}
		if primeCfg, err = writeConfig(dir, "prime", dbURL, slow.Master, p.PrimeConcurrency, p.PerMirror, ""); err != nil {
			return err
		}
	}
	child := func(name string, args ...string) childResult {
		fmt.Fprintf(childLog, "==== %s\n", name)
		if o.Profile != "" {
			// The same CLI, run by this program under a CPU profile.
			prof := append([]string{"sentry-profiled", filepath.Join(o.Profile, name+".pprof")}, args...)
			return runChild(ctx, childLog, o.Self, prof...)
		}
		return runChild(ctx, childLog, o.Sentry, args...)
	}
	jobsOf := func(mirrors int, base []string, rel loadfarm.ReleaseSpec, entries []manifestEntry) [][]job {
		out := make([][]job, mirrors)
		for m := range mirrors {
			js := make([]job, len(entries))
			for i, e := range entries {
				js[i] = job{url: primer.FileURL(base[m], rel.Dir, e.Path), size: rel.Size, hash: e.Hash}
			}
			out[m] = js
		}
		return out
	}

	// The absolute limit of hashing.
	one, all := sha256Rate()
	rep.sha1, rep.shaAll = one, all
	logf("sha256 in memory: %s per core, %s on %d cores", rate(one), rate(all), rep.machine.cores)

	if want("recording") {
		// Recording.
		logf("recording %d checks", p.RecordChecks)
		recRate, err := recordRate(ctx, st, mirrorIDs, lightEntries, p.RecordChecks)
		if err != nil {
			return err
		}
		rep.add(figure{name: "recording, changed checks", value: fmt.Sprintf("%.0f checks/s", recRate),
			limit: "—", ratio: recRate, target: "≥ 50,000 checks/s", pass: recRate >= 50_000,
			note: fmt.Sprintf("%d checks that changed what was known (a file verified before, now missing: a row of sentry_checks each, COPY, and an update of its sentry_file_state row) through sentry's Recorder, in batches of 5,000", p.RecordChecks)})
		logf("recording %d unchanged checks", p.RecordUnchanged)
		unRate, err := recordUnchanged(ctx, st, mirrorIDs, lightEntries, p.RecordUnchanged)
		if err != nil {
			return err
		}
		rep.add(figure{name: "recording, unchanged checks", value: fmt.Sprintf("%.0f checks/s", unRate),
			limit: "—", ratio: unRate, target: "≥ 500,000 checks/s", pass: unRate >= 500_000,
			note: fmt.Sprintf("%d checks that found what was known (a 304, routine) through sentry's Recorder: counted into sentry_check_hourly, no row each (verified: the counts grew by exactly that, no sentry_checks row)", p.RecordUnchanged)})
	}

	if want("light-sweep") {
		// Light sweep.
		if err := forget(ctx, st); err != nil {
			return err
		}
		if err := activate(ctx, st, ids(mirrorIDs, p.LightMirrors), light.Name); err != nil {
			return err
		}
		if err := seedSteady(ctx, st, light.Name, vantage, true); err != nil {
			return err
		}
		if err := settle(ctx, st); err != nil {
			return err
		}
		lightJobs := jobsOf(p.LightMirrors, farm.Mirrors, light, lightEntries)
		// Rounds of the bare client then sentry, the figure the median of
		// the rounds' ratios: one run of each is at the mercy of whatever
		// else the machine does in those seconds (±0.05 measured), and a
		// round's two runs share most of it.
		var bares, sweeps, ratios []float64
		var rounds []string
		var swErr error
		var swChecks int
		var bareBad int64
		for r := range p.LightRounds {
			logf("light sweep, round %d: bare client, %d HEADs", r+1, p.LightMirrors*p.LightFiles)
			stop := profileSelf(o.Profile, "light-sweep-bare")
			cpu0 := selfCPU()
			bare := bareClient(ctx, lightJobs, p.Concurrency, p.PerMirror, false)
			bareCPU := selfCPU() - cpu0
			stop()
			bareRate := float64(bare.checks) / bare.wall.Seconds()
			bareBad += bare.bad
			logf("  %s, %.0f checks/s, CPU %s, %d bad", bare.wall.Round(time.Millisecond), bareRate, bareCPU.Round(time.Millisecond), bare.bad)
			logf("light sweep, round %d: sentry sweep", r+1)
			farm.Reset()
			sw := child("light-sweep", "sweep", "--config", sweepCfg, "--format", "json")
			n, err := sweepChecks(sw, p.LightMirrors, p.LightFiles)
			swRate := float64(p.LightMirrors*p.LightFiles) / sw.wall.Seconds()
			fs, _ := farm.Stats()
			logf("  %s, %.0f checks/s, peak RSS %s, CPU %s, farm max in flight per mirror %d %v", sw.wall.Round(time.Millisecond), swRate,
				mib(sw.maxRSS), sw.cpu.Round(time.Millisecond), fs.MaxInFlight, err)
			swChecks, swErr = n, errors.Join(swErr, err)
			bares, sweeps, ratios = append(bares, bareRate), append(sweeps, swRate), append(ratios, swRate/bareRate)
			rounds = append(rounds, fmt.Sprintf("%.2f (sentry %s wall, %s CPU, peak RSS %s, max %d in flight on one mirror; bare client %s wall, %s CPU)",
				swRate/bareRate, sw.wall.Round(time.Millisecond), sw.cpu.Round(time.Millisecond), mib(sw.maxRSS), fs.MaxInFlight,
				bare.wall.Round(time.Millisecond), bareCPU.Round(time.Millisecond)))
		}
		bareRate, swRate, ratio := median(bares), median(sweeps), median(ratios)
		rep.add(figure{name: "light sweep", value: fmt.Sprintf("%.0f checks/s", swRate),
			limit: fmt.Sprintf("%.0f checks/s", bareRate), ratio: ratio, target: "≥ 0.75", pass: swErr == nil && bareBad == 0 && ratio >= 0.75,
			note: fmt.Sprintf("an unchanged sweep (the release primed and swept before: seeded): %d mirrors × %d files = %d conditional HEADs (%d checks in the report), concurrency %d, %d per mirror, `checks.per_mirror_rate` far above the farm's speed; %d rounds of the bare client (plain HEADs) then sentry: the rates are the medians of each, the ratio the median of the rounds' ratios; the rounds: %s%s",
				p.LightMirrors, p.LightFiles, p.LightMirrors*p.LightFiles, swChecks, p.Concurrency, p.PerMirror, p.LightRounds,
				strings.Join(rounds, "; "), errNote(swErr, bareBad))})
	}

	if want("memory") {
		// Seed scale: memory and the database of an unchanged sweep.
		var rss [2]childResult
		var memErr error
		var grew, wrote int64
		for i, n := range []int{p.SmallMirrors, p.BigMirrors} {
			if err := forget(ctx, st); err != nil {
				return err
			}
			if err := activate(ctx, st, ids(mirrorIDs, n), seedRel.Name); err != nil {
				return err
			}
			if err := seedSteady(ctx, st, seedRel.Name, vantage, true); err != nil {
				return err
			}
			before, err := dbSize(ctx, st)
			if err != nil {
				return err
			}
			rowsBefore, err := rowsWritten(ctx, st)
			if err != nil {
				return err
			}
			logf("seed scale: unchanged sentry sweep of %d mirrors × %d files", n, p.SeedFiles)
			rss[i] = child(fmt.Sprintf("memory-%d", n*p.SeedFiles), "sweep", "--config", sweepCfg, "--format", "json")
			if _, err := sweepChecks(rss[i], n, p.SeedFiles); err != nil {
				memErr = err
			}
			after, err := dbSize(ctx, st)
			if err != nil {
				return err
			}
			rowsAfter, err := rowsWritten(ctx, st)
			if err != nil {
				return err
			}
			grew, wrote = after-before, rowsAfter-rowsBefore
			logf("  %s, %.0f checks/s, peak RSS %s, database %+d bytes, %d rows written", rss[i].wall.Round(time.Millisecond),
				float64(n*p.SeedFiles)/rss[i].wall.Seconds(), mib(rss[i].maxRSS), grew, wrote)
		}
		growth := float64(rss[1].maxRSS) / float64(rss[0].maxRSS)
		rep.add(figure{name: "seed scale", value: fmt.Sprintf("%s for %d checks", mib(rss[1].maxRSS), p.BigMirrors*p.SeedFiles),
			limit: fmt.Sprintf("%s for %d checks", mib(rss[0].maxRSS), p.SmallMirrors*p.SeedFiles), ratio: growth,
			target: "≤ 1.3, < 150 MiB, database < 1 MiB per unchanged sweep",
			pass:   memErr == nil && growth <= 1.3 && rss[1].maxRSS < 150<<20 && grew < 1<<20,
			note: fmt.Sprintf("unchanged sweeps (seeded steady state) of %d mirrors × %d files and of %d × %d; peak RSS (VmHWM of the `sentry sweep` process; the farm runs in another process); %s and %s wall (%.0f and %.0f checks/s); the database grew by %s after VACUUM in the %d-mirror sweep (%d bytes a mirror) and %d rows were inserted, updated or deleted in all (%.1f a mirror: its work row, its sentry_log row, the hourly counts)%s",
				p.SmallMirrors, p.SeedFiles, p.BigMirrors, p.SeedFiles, rss[0].wall.Round(time.Millisecond), rss[1].wall.Round(time.Millisecond),
				float64(p.SmallMirrors*p.SeedFiles)/rss[0].wall.Seconds(), float64(p.BigMirrors*p.SeedFiles)/rss[1].wall.Seconds(),
				mib(grew), p.BigMirrors, grew/int64(p.BigMirrors), wrote, float64(wrote)/float64(p.BigMirrors), errNote(memErr, 0))})
	}

	if want("growth") {
		// The database over many unchanged sweeps, with retention.
		if err := forget(ctx, st); err != nil {
			return err
		}
		if err := activate(ctx, st, ids(mirrorIDs, p.GrowthMirrors), growthRel.Name); err != nil {
			return err
		}
		if err := seedSteady(ctx, st, growthRel.Name, vantage, true); err != nil {
			return err
		}
		logf("growth: %d unchanged sweeps of %d mirrors × %d files", p.GrowthSweeps, p.GrowthMirrors, p.GrowthFiles)
		g, gErr := growth(ctx, st, p.GrowthSweeps, func(i int) error {
			c := child(fmt.Sprintf("growth-%d", i), "sweep", "--config", sweepCfg, "--format", "json")
			_, err := sweepChecks(c, p.GrowthMirrors, p.GrowthFiles)
			return err
		}, logf)
		ratio := float64(g.atN) / float64(max(g.at10, 1))
		rep.add(figure{name: "database growth", value: fmt.Sprintf("%s after %d sweeps", mib(g.atN), g.sweeps),
			limit: fmt.Sprintf("%s after 10", mib(g.at10)), ratio: ratio, target: "≤ 1.10",
			pass: gErr == nil && ratio <= 1.10,
			note: fmt.Sprintf("%d unchanged `sentry sweep`s of %d mirrors × %d files (%s each), pruned after each by store.Prune — what the daemon runs hourly and `sentry db prune` runs — with a retention of the first five sweeps' time (%s), standing for retention.checks (30d) of sweeps every 15 minutes; sizes after VACUUM, sentry_log (bouncer's, never pruned) included%s",
				g.sweeps, p.GrowthMirrors, p.GrowthFiles, g.perSweep.Round(time.Millisecond), g.window.Round(time.Millisecond), errNote(gErr, 0))})
	}

	if want("polite") {
		if err := polite(ctx, o, cluster, dir, p, rep, child, logf); err != nil {
			return err
		}
	}

	if want("deep-verification") {
		// Deep verification.
		if err := forget(ctx, st); err != nil {
			return err
		}
		if err := activate(ctx, st, ids(mirrorIDs, p.DeepMirrors), deep.Name); err != nil {
			return err
		}
		deepJobs := jobsOf(p.DeepMirrors, farm.Mirrors, deep, deepEntries)
		total := float64(int64(p.DeepMirrors*p.DeepFiles) * p.DeepSize)
		logf("deep verification: bare client, %d GETs of %s", p.DeepMirrors*p.DeepFiles, mib(p.DeepSize))
		dbare := bareClient(ctx, deepJobs, p.Concurrency, p.PerMirror, true)
		dbareRate := float64(dbare.bytes) / dbare.wall.Seconds()
		logf("  %s, %s, %d bad", dbare.wall.Round(time.Millisecond), rate(dbareRate), dbare.bad)
		logf("deep verification: sentry sweep --deep")
		ds := child("deep-sweep", "sweep", "--deep", "--config", sweepCfg, "--format", "json")
		_, dsErr := sweepChecks(ds, p.DeepMirrors, p.DeepFiles)
		if dsErr == nil {
			dsErr = allHashed(ds, p.DeepMirrors*p.DeepFiles)
		}
		dsRate := total / ds.wall.Seconds()
		logf("  %s, %s, cpu %s %v", ds.wall.Round(time.Millisecond), rate(dsRate), ds.cpu.Round(time.Millisecond), dsErr)
		rep.add(figure{name: "deep verification", value: rate(dsRate), limit: rate(dbareRate), ratio: dsRate / dbareRate,
			target: "≥ 0.85", pass: dsErr == nil && dsRate/dbareRate >= 0.85,
			note: fmt.Sprintf("%d mirrors × %d files × %s = %s hashed by `sentry sweep --deep` in %s (%s CPU, peak RSS %s), by a bare GET + SHA-256 client in %s; pure in-memory SHA-256 on this machine: %s on one core, %s on %d cores%s",
				p.DeepMirrors, p.DeepFiles, mib(p.DeepSize), mib(int64(total)), ds.wall.Round(time.Millisecond), ds.cpu.Round(time.Millisecond), mib(ds.maxRSS),
				dbare.wall.Round(time.Millisecond), rate(one), rate(all), rep.machine.cores, errNote(dsErr, dbare.bad))})

		// What an operator would write instead.
		var flat []job
		for _, js := range deepJobs {
			flat = append(flat, js...)
		}
		if _, err := execLookPath("curl"); err != nil {
			rep.add(figure{name: "shell pipeline", value: "skipped", limit: "—", target: "sentry clearly faster", note: "curl is not installed on this machine"})
		} else {
			logf("deep verification: curl | sha256sum under xargs -P %d", p.Concurrency)
			sh, err := shellPipeline(ctx, dir, flat, p.Concurrency)
			shRate := float64(sh.bytes) / sh.wall.Seconds()
			logf("  %s, %s, %d bad %v", sh.wall.Round(time.Millisecond), rate(shRate), sh.bad, err)
			rep.add(figure{name: "vs. a shell pipeline", value: rate(dsRate), limit: rate(shRate), ratio: dsRate / shRate,
				target: "sentry clearly faster (> 1)", pass: err == nil && sh.bad == 0 && dsRate/shRate > 1.5,
				note: fmt.Sprintf("the same %d files verified by `xargs -P %d` of `curl -s URL | sha256sum` in %s (no per-mirror cap; sums compared afterwards, untimed)%s",
					len(flat), p.Concurrency, sh.wall.Round(time.Millisecond), errNote(err, sh.bad))})
		}
	}

	if want("release-prime") {
		// Release prime.
		if err := forget(ctx, st); err != nil {
			return err
		}
		if err := activate(ctx, st, slowIDs, primeRel.Name); err != nil {
			return err
		}
		logf("release prime: %d files of %s on %d pull mirrors, %s per request", p.PrimeFiles, mib(p.PrimeSize), p.PrimeMirrors, p.PrimeLatency)
		slow.Reset()
		pr := child("prime", "prime", "--release", primeRel.Name, "--config", primeCfg, "--format", "json")
		prErr := primeOK(pr, p.PrimeMirrors, p.PrimeFiles)
		ps, _ := slow.Stats()
		// The bound: every file needs a GET and the follow-up HEAD (sentry's
		// pull prime records the cache's word after the fetch), each waiting
		// the latency, PerMirror at a time on each mirror and at most
		// PrimeConcurrency at a time in all; and every byte must be hashed.
		reqs := 2.0
		perMirrorBound := math.Ceil(float64(p.PrimeFiles)/float64(p.PerMirror)) * reqs * p.PrimeLatency.Seconds()
		globalBound := math.Ceil(float64(p.PrimeFiles*p.PrimeMirrors)*reqs/float64(p.PrimeConcurrency)) * p.PrimeLatency.Seconds()
		hashBound := float64(int64(p.PrimeFiles*p.PrimeMirrors)*p.PrimeSize) / all
		bound := max(perMirrorBound, globalBound, hashBound)
		oneGet := bound / reqs
		logf("  %s (bound %.2fs), farm saw %d requests, max %d in flight on one mirror %v", pr.wall.Round(time.Millisecond), bound, ps.Requests, ps.MaxInFlight, prErr)
		rep.add(figure{name: "release prime", value: fmt.Sprintf("%.2f s", pr.wall.Seconds()), limit: fmt.Sprintf("%.2f s", bound),
			ratio: pr.wall.Seconds() / bound, target: "≤ 1.5", pass: prErr == nil && pr.wall.Seconds()/bound <= 1.5,
			note: fmt.Sprintf("`sentry prime` of %d files × %s on %d pull mirrors (%s latency per request, per-mirror concurrency %d, concurrency %d): bound = max(per mirror ⌈%d/%d⌉ × 2 requests × %s = %.2fs, all mirrors %.2fs, hashing %s at %s = %.2fs); with one GET per file and no follow-up HEAD the bound would be %.2fs (ratio %.2f); the farm saw %d requests, at most %d in flight on one mirror; peak RSS %s%s",
				p.PrimeFiles, mib(p.PrimeSize), p.PrimeMirrors, p.PrimeLatency, p.PerMirror, p.PrimeConcurrency,
				p.PrimeFiles, p.PerMirror, p.PrimeLatency, perMirrorBound, globalBound, mib(int64(p.PrimeFiles*p.PrimeMirrors)*p.PrimeSize), rate(all), hashBound,
				oneGet, pr.wall.Seconds()/oneGet, ps.Requests, ps.MaxInFlight, mib(pr.maxRSS), errNote(prErr, 0))})
	}

	if want("bandwidth-prime") {
		if err := bandwidthPrime(ctx, o, st, dbURL, dir, rep, logf, child); err != nil {
			return err
		}
	}

	if want("capacity-prime") {
		if err := capacityPrime(ctx, o, st, dbURL, dir, rep, logf, child); err != nil {
			return err
		}
	}

	if want("shared-sweep") {
		if err := sharedSweep(ctx, o, cluster, dir, rep, logf); err != nil {
			return err
		}
	}

	rep.wall = time.Since(benchStart)
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.loadEnd = strings.Join(strings.Fields(string(b))[:3], ", ")
	}
	if o.Micro != "" {
		if b, err := os.ReadFile(o.Micro); err == nil {
			rep.micro = string(b)
		}
	}
	md := rep.markdown()
	fmt.Fprint(o.Log, rep.table())
	if o.Out != "" {
		if err := os.WriteFile(o.Out, []byte(md), 0o644); err != nil {
			return err
		}
		logf("wrote %s", o.Out)
	}
	return nil
}

type manifestEntry = manifest.Entry

func errNote(err error, bad int64) string {
	s := ""
	if bad > 0 {
		s += fmt.Sprintf("; %d bare-client answers were wrong", bad)
	}
	if err != nil {
		s += "; NOT VALID: " + err.Error()
	}
	return s
}

// sweepChecks reads a sweep's JSON report and checks that every file on
// every mirror was found present.
func sweepChecks(c childResult, mirrors, files int) (int, error) {
	if c.runErr != nil || c.exit != 0 {
		return 0, fmt.Errorf("sentry exited %d (%v)", c.exit, c.runErr)
	}
	var rep sweep.Report
	if err := json.Unmarshal(c.stdout, &rep); err != nil {
		return 0, fmt.Errorf("sweep report: %w", err)
	}
	if len(rep.Mirrors) != mirrors {
		return 0, fmt.Errorf("sweep checked %d mirrors, want %d", len(rep.Mirrors), mirrors)
	}
	n := 0
	for _, m := range rep.Mirrors {
		n += m.Checked
		if m.OK+m.Unchanged != files {
			return n, fmt.Errorf("mirror %s: %d of %d files present (%s)", m.Name, m.OK+m.Unchanged, files, m.FirstFailure)
		}
	}
	return n, nil
}

func allHashed(c childResult, want int) error {
	var rep sweep.Report
	if err := json.Unmarshal(c.stdout, &rep); err != nil {
		return err
	}
	n := 0
	for _, m := range rep.Mirrors {
		n += m.Hashed
	}
	if n != want {
		return fmt.Errorf("%d files hashed, want %d", n, want)
	}
	return nil
}

func primeOK(c childResult, mirrors, files int) error {
	if c.runErr != nil || c.exit != 0 {
		return fmt.Errorf("sentry exited %d (%v)", c.exit, c.runErr)
	}
	var rep prime.Report
	if err := json.Unmarshal(c.stdout, &rep); err != nil {
		return fmt.Errorf("prime report: %w", err)
	}
	if len(rep.Mirrors) != mirrors {
		return fmt.Errorf("primed %d mirrors, want %d", len(rep.Mirrors), mirrors)
	}
	for _, m := range rep.Mirrors {
		if m.FilesOK != files {
			return fmt.Errorf("mirror %s: %d of %d files verified (%s)", m.Name, m.FilesOK, files, m.FirstFailure)
		}
	}
	return nil
}

// recordRate pushes n synthetic checks through a Recorder into the
// database: checks written per second, file state included.
func recordRate(ctx context.Context, st *store.Store, mirrors []int, entries []manifestEntry, n int) (float64, error) {
	runID, rel, err := recordingRun(ctx, st)
	if err != nil {
		return 0, err
	}
	// The files are known on their mirrors (primed and swept before):
	// each check below changes what is known of one (a file gone), as
	// changes come in a steady state.
	used := mirrors[:min(len(mirrors), (n+len(entries)-1)/len(entries))]
	if err := activate(ctx, st, used, "light"); err != nil {
		return 0, err
	}
	if err := seedSteady(ctx, st, "light", "default", true); err != nil {
		return 0, err
	}
	now := time.Now()
	checks := make([]store.Check, n)
	for i := range checks {
		e := entries[i%len(entries)]
		checks[i] = store.Check{RunID: runID, MirrorID: used[(i/len(entries))%len(used)], ReleaseID: rel.ID,
			Path: e.Path, CheckedAt: now, Vantage: "default", Method: "HEAD", Result: "not_found", Status: 404,
			Bytes: -1, Duration: time.Millisecond, Attempts: 1, Size: -1, Detail: "HTTP 404 Not Found"}
	}
	rec := record.New(st, slog.New(slog.DiscardHandler))
	start := time.Now()
	for i := range checks {
		if err := rec.Add(ctx, checks[i]); err != nil {
			return 0, err
		}
	}
	if err := rec.Close(ctx); err != nil {
		return 0, err
	}
	el := time.Since(start)
	if _, err := st.Pool().Exec(ctx, `UPDATE sentry_runs SET outcome = 'completed', finished_at = now() WHERE id = $1`, runID); err != nil {
		return 0, err
	}
	var got int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM sentry_checks WHERE run_id = $1`, runID).Scan(&got); err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("recording: %d checks in the database, want %d", got, n)
	}
	return float64(n) / el.Seconds(), nil
}

func httpGet(u string) ([]byte, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func mib(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", b>>10)
	}
}

func rate(bps float64) string { return fmt.Sprintf("%.0f MiB/s", bps/(1<<20)) }

func execLookPath(name string) (string, error) {
	for _, d := range strings.Split(os.Getenv("PATH"), ":") {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}
