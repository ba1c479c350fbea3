package bench

import (
	"bufio"
	_ "embed"
	"fmt"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

type machineInfo struct {
	cpu, goVersion, os string
	cores              int
}

func machine() machineInfo {
	m := machineInfo{cpu: "unknown", goVersion: runtime.Version(), cores: runtime.NumCPU(), os: runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.os = strings.Trim(v, `"`) + ", " + m.os
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.os += ", Linux " + strings.TrimSpace(string(b))
	}
	return m
}

// analysis is the hand-written part of BENCHMARKS.md: what was changed and
// why the figures that miss do.
//
//go:embed analysis.md
var analysis string

// figure is one line of the report: a value against a limit measured in
// the same run.
type figure struct {
	name, value, limit string
	ratio              float64
	target             string
	pass               bool
	note               string
}

type report struct {
	params  Params
	command string
	args    string
	quick   bool
	only    []string // the figures measured, when not all
	machine machineInfo
	sha1    float64
	shaAll  float64
	figures []figure
	wall    time.Duration
	loadEnd string
	micro   string
}

func (r *report) add(f figure) { r.figures = append(r.figures, f) }

func verdict(f figure) string {
	if f.value == "skipped" {
		return "SKIPPED"
	}
	if f.pass {
		return "PASS"
	}
	return "MISS"
}

// table is the summary printed at the end of a run.
func (r *report) table() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nFIGURE\tVALUE\tLIMIT\tRATIO\tTARGET\t")
	for _, f := range r.figures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.name, f.value, f.limit, ratio(f), f.target, verdict(f))
	}
	tw.Flush()
	fmt.Fprintf(&b, "in-memory SHA-256: %s per core, %s on %d cores\nbench wall time: %s\n", rate(r.sha1), rate(r.shaAll), r.machine.cores, r.wall.Round(time.Second))
	return b.String()
}

func ratio(f figure) string {
	if f.value == "skipped" {
		return "—"
	}
	if f.limit == "—" {
		return "—"
	}
	return fmt.Sprintf("%.2f", f.ratio)
}

// markdown is BENCHMARKS.md's measured part.
func (r *report) markdown() string {
	var b strings.Builder
	p := r.params
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Benchmarks\n\n")
	w("Written by `%s` (internal/bench, `sentry-bench %s`) on %s; the whole run took %s.\n",
		r.command, r.args, time.Now().UTC().Format("2006-01-02 15:04 UTC"), r.wall.Round(time.Second))
	if r.quick {
		w("\n**Quick run: small sizes, not the issue's. Run `make bench` for the real figures.**\n")
	}
	if len(r.only) > 0 {
		w("\n**Partial run: only %s. Run `make bench` for every figure.**\n\n", strings.Join(r.only, ", "))
	}
	w("Every figure is a ratio against a limit measured in the same run on the same machine, so that\n")
	w("the noise of a shared 2-core machine cancels out as far as it can.\n\n")
	w("## Machine\n\n")
	w("| | |\n|---|---|\n")
	w("| CPU | %s |\n| cores | %d |\n| Go | %s |\n| OS | %s |\n", r.machine.cpu, r.machine.cores, r.machine.goVersion, r.machine.os)
	w("| load average at the end (1, 5, 15 min) | %s (other work on the machine perturbs every figure; the ratios only partly cancel it) |\n", r.loadEnd)
	w("| SHA-256 in memory | %s on one core, %s on %d cores (the absolute limit of verification) |\n\n", rate(r.sha1), rate(r.shaAll), r.machine.cores)
	w("## Parameters\n\n")
	w("- concurrency %d in all, %d per mirror (`checks.concurrency`, `checks.per_mirror_concurrency`), for sentry and for the bare clients alike;\n", p.Concurrency, p.PerMirror)
	w("- light sweep: %d mirrors × %d files (HEAD); memory: %d × %d and %d × %d; files are %d locations × %d languages of one release;\n",
		p.LightMirrors, p.LightFiles, p.SmallMirrors, p.LightFiles, p.BigMirrors, p.LightFiles, p.LightFiles/langsPer, langsPer)
	w("- deep verification: %d mirrors × %d files × %s (`sentry sweep --deep`, every pair due);\n", p.DeepMirrors, p.DeepFiles, mib(p.DeepSize))
	w("- release prime: %d files × %s on %d pull mirrors with %s latency per request, concurrency %d;\n", p.PrimeFiles, mib(p.PrimeSize), p.PrimeMirrors, p.PrimeLatency, p.PrimeConcurrency)
	w("- bandwidth prime: %d files × %s on %d pull mirrors with %s latency per request, the farm's egress capped at %s, primed with `verify.mode: full` and then `sampled` (defaults: 32 blocks of 16 KiB);\n",
		p.BandwidthFiles, mib(p.BandwidthSize), p.BandwidthMirrors, p.BandwidthLatency, rate(p.BandwidthEgress))
	w("- capacity prime: %d files × %s on %d pull mirrors of skewed ratings (1000·0.98^i, in a random order of their ids) with %s latency per request, the farm's egress capped at %s, primed with `verify.mode: sampled` (%d blocks of %s): the time to 90%% and 100%% of the rating-weighted capacity;\n",
		p.CapacityFiles, mib(p.CapacitySize), p.CapacityMirrors, p.CapacityLatency, rate(p.CapacityEgress), p.CapacitySample, mib(p.CapacityBlock))
	w("- recording: %d checks through the Recorder;\n", p.RecordChecks)
	w("- shared sweep: 1 to %d `sentry run` daemons on one database sharing the first scheduled sweep of %d mirrors × %d files (HEAD) with %s latency per request, each daemon with concurrency %d, %d per mirror;\n",
		p.SharedInstances, p.SharedMirrors, p.SharedFiles, p.SharedLatency, p.SharedConcurrency, p.SharedPerMirror)
	w("- mirrors are a load farm (internal/bench/loadfarm) in a child process, one loopback listener per mirror, content generated as it is sent; PostgreSQL is a throwaway cluster (sentry/demo/pgcluster, fsync off); light sweeps, the seed-scale, growth, rsync and shared sweeps run in the steady state (the release primed and swept before: its file states seeded; the light and shared sweeps also vacuum and checkpoint the database before they are timed); the deep verification hashes every pair (all due).\n\n")
	w("Reproduce: `make bench` (builds bin/sentry and bin/sentry-bench, runs the micro-benchmarks, then `bin/sentry-bench -sentry bin/sentry -out BENCHMARKS.md`). Profiles: `bin/sentry-bench -profile DIR`, then `go tool pprof -top bin/sentry-bench DIR/light-sweep.pprof` (beside it: `light-sweep.allocs.pprof`, what sentry allocated, and `light-sweep-bare.pprof`, the bare client's CPU).\n\n")
	w("## Figures\n\n")
	w("| figure | sentry | limit | ratio | target | |\n|---|---|---|---|---|---|\n")
	for _, f := range r.figures {
		w("| %s | %s | %s | %s | %s | **%s** |\n", f.name, f.value, f.limit, ratio(f), f.target, verdict(f))
	}
	w("\n")
	for _, f := range r.figures {
		w("- **%s**: %s.\n", f.name, f.note)
	}
	w("\n%s", analysis)
	if r.micro != "" {
		w("\n## Micro-benchmarks\n\n`go test -run '^$' -bench . -benchmem` of the hot paths (run by `make bench`):\n\n```\n%s```\n", r.micro)
	}
	return b.String()
}
