// Command sentry-bench is `make bench`: it measures sentry against the
// limits of this machine and writes BENCHMARKS.md. See internal/bench.
//
//	sentry-bench [-sentry bin/sentry] [-out BENCHMARKS.md] [-micro FILE] [-quick] [-profile DIR] [-only FIGURE,...]
//
// With -only, just the named figures are measured (e.g. -only shared-sweep),
// and the report is written only when -out is given.
//
// It re-executes itself as the load farm ("farm") and, with -profile, as a
// CPU-profiled sentry ("sentry-profiled FILE ARGS...").
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/mirrorsentry/sentry/internal/bench"
	"github.com/mirrorsentry/sentry/internal/bench/loadfarm"
	"github.com/mirrorsentry/sentry/sentry/cli"
)

func main() {
	if len(os.Args) >= 3 && os.Args[1] == "farm" {
		if err := loadfarm.ServeProcess(os.Args[2], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "farm:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) >= 3 && os.Args[1] == "sentry-profiled" {
		stop, err := bench.ProfileCPU(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		code := cli.Run(os.Args[3:])
		stop()
		// And what it allocated, beside it: NAME.allocs.pprof.
		if a, err := os.Create(strings.TrimSuffix(os.Args[2], ".pprof") + ".allocs.pprof"); err == nil {
			pprof.Lookup("allocs").WriteTo(a, 0)
			a.Close()
		}
		os.Exit(code)
	}
	sentryBin := flag.String("sentry", "bin/sentry", "the sentry binary to measure")
	out := flag.String("out", "BENCHMARKS.md", "the report to write")
	micro := flag.String("micro", "", "a file of `go test -bench` output to include in the report")
	quick := flag.Bool("quick", false, "small sizes, to try the harness (the report says so)")
	profile := flag.String("profile", "", "write a CPU profile (NAME.pprof) and an allocation profile (NAME.allocs.pprof) of each sentry run into this directory")
	only := flag.String("only", "", "measure only these figures, comma-separated, of: "+strings.Join(bench.Figures, ", ")+
		" (the report is then written only when -out is given)")
	flag.Parse()
	var figures []string
	if *only != "" {
		figures = strings.Split(*only, ",")
		outSet := false
		flag.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
		if !outSet {
			*out = ""
		}
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p := bench.DefaultParams()
	if *quick {
		p = bench.QuickParams()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = bench.Run(ctx, bench.Options{Params: p, Sentry: *sentryBin, Self: self, Out: *out, Micro: *micro,
		Log: os.Stderr, Command: "make bench", Profile: *profile, Quick: *quick, Args: strings.Join(os.Args[1:], " "), Only: figures})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sentry-bench:", err)
		os.Exit(1)
	}
}
