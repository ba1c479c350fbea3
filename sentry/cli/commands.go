package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/metrics"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/store"
	"github.com/mirrorsentry/sentry/sentry/web"
)

func init() {
	register(&command{
		name:    "db migrate",
		summary: "Create or upgrade the bouncer tables and sentry's own tables. Running it again is a no-op; existing rows and columns are kept.",
		flags: func(fs *flag.FlagSet) func(context.Context, *Env, *common, []string) error {
			return runMigrate
		},
	})
	register(&command{
		name:    "db prune",
		summary: "Delete sentry's records older than retention.checks and retention.rollup (and sentry_log rows older than retention.sentry_log, when set), in small batches; the other bouncer tables and the state history are kept.",
		flags: func(fs *flag.FlagSet) func(context.Context, *Env, *common, []string) error {
			return runPrune
		},
	})
	register(&command{
		name:    "prime",
		summary: "Prime and verify release R on every active mirror, mark the bouncer tables and print a per-mirror summary.",
		usage:   "--release R [--mirror NAME]...",
		formats: []string{"table", "json"},
		flags: func(fs *flag.FlagSet) func(context.Context, *Env, *common, []string) error {
			rel := fs.String("release", "", "the release `R` to prime, as named by its directory on staging (required)")
			force := fs.Bool("force", false, "re-download files already verified by an earlier run of this release")
			var only names
			fs.Var(&only, "mirror", "prime only the active mirror `NAME` (mirror_mirrors.name; repeat for several)")
			return func(ctx context.Context, env *Env, c *common, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if err := requireRelease(*rel); err != nil {
					return err
				}
				return runPrime(ctx, env, c, sentry.PrimeOptions{Release: *rel, Force: *force, Mirrors: only})
			}
		},
	})
	register(&command{
		name:    "sweep",
		summary: "Run one integrity sweep now (for system cron): reachability, presence and size; with --deep, checksums too.",
		usage:   "[--deep] [--mirror NAME]...",
		formats: []string{"table", "json"},
		flags: func(fs *flag.FlagSet) func(context.Context, *Env, *common, []string) error {
			deep := fs.Bool("deep", false, "also verify checksums, on a rotating share of files")
			var only names
			fs.Var(&only, "mirror", "sweep only the active mirror `NAME` now (mirror_mirrors.name; repeat for several)")
			return func(ctx context.Context, env *Env, c *common, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				return runSweep(ctx, env, c, sentry.SweepOptions{Deep: *deep, Mirrors: only})
			}
		},
	})
	register(&command{
		name:    "run",
		summary: "Run the daemon: cron schedules from the config, the HTTP status page, metrics and the authenticated release hook.",
		more: `endpoints (on http.listen, default 127.0.0.1:8080):
  GET  /                  the status page (/mirrors/NAME, /releases/R)
  GET  /api/              the index of the JSON API: /api/mirrors, /api/runs, ...
  GET  /api/uptake/       the bouncer admin app's uptake API (?product=P&os=O)
  GET  /metrics           Prometheus metrics
  GET  /healthz           200 when the database answers, else 503
  POST /hooks/release     the signed release hook: starts a prime

signals:
  SIGTERM, SIGINT         stop: no new work; running checks get shutdown_grace
                          to finish; exit 0

environment (each overrides its key of the configuration file):
  SENTRY_DATABASE_URL     database.url
  SENTRY_HOOK_SECRET      hook.secret
  SENTRY_TRIGGER_SECRET   trigger.secret
  SENTRY_NOTIFY_SECRET    notify.secret
  SENTRY_SMTP_PASSWORD    notify.smtp.password
`,
		flags: func(fs *flag.FlagSet) func(context.Context, *Env, *common, []string) error {
			return func(ctx context.Context, env *Env, c *common, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				return runDaemon(ctx, env, c)
			}
		},
	})
	register(&command{
		name:    "report",
		summary: "Print a per-mirror failure report from recorded checks.",
		usage:   "[--mirror NAME | --release R] [--since D]",
		formats: []string{"table", "json", "csv"},
		flags: func(fs *flag.FlagSet) func(context.Context, *Env, *common, []string) error {
			mirror := fs.String("mirror", "", "report on mirror `NAME`: failing files and state history")
			rel := fs.String("release", "", "report release `R`'s uptake across mirrors")
			since := fs.String("since", "24h", "window: a duration (24h, 7d) or a date (2006-01-02)")
			return func(ctx context.Context, env *Env, c *common, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if *mirror != "" && *rel != "" {
					return usageErrorf("--mirror and --release are different reports; give one")
				}
				return runReport(ctx, env, c, *mirror, *rel, *since)
			}
		},
	})
	register(&command{
		name:    "demo",
		summary: "Run the whole job on a throwaway local setup: a PostgreSQL cluster, a master and local mirrors.",
		more:    "The demo writes its own configuration, for its own cluster and mirrors: --config is refused.\n",
		flags: func(fs *flag.FlagSet) func(context.Context, *Env, *common, []string) error {
			return func(ctx context.Context, env *Env, c *common, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if flagSet(fs, "config") {
					return usageErrorf("--config: the demo writes its own configuration, for its own cluster and mirrors, and reads none")
				}
				return runDemo(ctx, env)
			}
		},
	})
}

// flagSet reports whether the command line set flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// names is a flag that may be repeated, each time adding a name.
type names []string

func (n *names) String() string { return strings.Join(*n, ",") }

func (n *names) Set(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("empty name")
	}
	*n = append(*n, v)
	return nil
}

func runMigrate(ctx context.Context, env *Env, c *common, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	cfg, err := loadConfig(env, c)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, cfg.Database.MaxConns)
	if err != nil {
		return err
	}
	defer st.Close()
	applied, err := st.Migrate(ctx)
	if err != nil {
		return err
	}
	v, err := st.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(env.Stdout, "schema is current (version %d); nothing to do\n", v)
		return nil
	}
	for _, m := range applied {
		fmt.Fprintf(env.Stdout, "applied %04d_%s\n", m.Version, m.Name)
	}
	fmt.Fprintf(env.Stdout, "schema is at version %d\n", v)
	return nil
}

func runPrune(ctx context.Context, env *Env, c *common, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	cfg, err := loadConfig(env, c)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.Database.URL, cfg.Database.MaxConns)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RequireSchema(ctx); err != nil {
		return err
	}
	p, err := st.Prune(ctx, sentry.Retention(cfg))
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "pruned %d checks, %d runs, %d instances and %d notices older than %s, %d hourly counts older than %s\n",
		p.Checks, p.Runs, p.Instances, p.Notices, cfg.Retention.Checks, p.Hours, cfg.Retention.Rollup)
	fmt.Fprintf(env.Stdout, "dropped the block digests of %d files no live release holds\n", p.Digests)
	if cfg.Retention.SentryLog > 0 {
		fmt.Fprintf(env.Stdout, "pruned %d sentry_log rows older than %s\n", p.Log, cfg.Retention.SentryLog)
	} else {
		fmt.Fprintln(env.Stdout, "kept every sentry_log row (retention.sentry_log is 0)")
	}
	return nil
}

// openDeps loads the configuration and opens what a run needs. The
// returned close function releases it all.
func openDeps(ctx context.Context, env *Env, c *common) (*sentry.Deps, func(), error) {
	cfg, err := loadConfig(env, c)
	if err != nil {
		return nil, nil, err
	}
	st, err := openStore(ctx, cfg, cfg.Database.MaxConns)
	if err != nil {
		return nil, nil, err
	}
	client, err := sentry.NewClient(cfg, env.Logger)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	d := &sentry.Deps{Config: cfg, Store: st, Client: client, Logger: env.Logger}
	notifier := sentry.NewNotifier(cfg, env.Logger)
	if notifier != nil {
		d.Observer = notifier
	}
	mailer, err := sentry.NewMailer(cfg, st, env.Logger)
	if err != nil {
		client.CloseIdleConnections()
		st.Close()
		return nil, nil, err
	}
	if mailer != nil {
		d.Observer = observe.All(d.Observer, mailer)
	}
	return d, func() {
		if mailer != nil {
			// What the run owes is mailed within the same bound; what is
			// left goes out with the next sentry (sentry_notices).
			closeCtx, cancel := context.WithTimeout(context.Background(), notifyFlush)
			if err := mailer.Close(closeCtx); err != nil {
				env.Logger.Warn("mail", "err", err)
			}
			cancel()
		}
		if notifier != nil {
			// What is queued gets a bounded time to go out.
			closeCtx, cancel := context.WithTimeout(context.Background(), notifyFlush)
			if err := notifier.Close(closeCtx); err != nil {
				env.Logger.Warn("webhooks", "err", err)
			}
			cancel()
		}
		client.CloseIdleConnections()
		st.Close()
	}, nil
}

// showProgress draws a live progress line of a command's run on a
// terminal's stderr; the returned function stops it.
func showProgress(env *Env, d *sentry.Deps, label string) func() {
	if !env.IsTerminal {
		return func() {}
	}
	p := newProgress(env.Stderr, label)
	d.Observer = observe.All(d.Observer, p)
	return p.stop
}

// notifyFlush bounds how long a command waits, at its end, for queued
// webhook notifications to go out.
const notifyFlush = 15 * time.Second

func runPrime(ctx context.Context, env *Env, c *common, opts sentry.PrimeOptions) error {
	d, closeDeps, err := openDeps(ctx, env, c)
	if err != nil {
		return err
	}
	defer closeDeps()
	stop := showProgress(env, d, "prime "+opts.Release)
	rep, err := sentry.Prime(ctx, d, opts)
	stop()
	var running engine.RunningError
	if errors.As(err, &running) {
		return fmt.Errorf("release %s is being primed by run %d; --force re-verifies once it has ended", opts.Release, running.RunID)
	}
	if err != nil {
		return err
	}
	if c.format == "json" {
		err = writeJSON(env.Stdout, rep)
	} else {
		err = writePrimeTable(env.Stdout, rep, c.wide)
	}
	if err != nil {
		return err
	}
	return outcomeError(rep.RunID, rep.Outcome, rep.Reason)
}

// outcomeError is the exit of a run that ended with outcome: nil when it
// completed, errGuarded (exit 3) when the guard held back marking, an error
// (exit 1) naming the run otherwise.
func outcomeError(runID int64, outcome, reason string) error {
	switch outcome {
	case store.OutcomeGuarded:
		return fmt.Errorf("%w: %s", errGuarded, reason)
	case store.OutcomeCompleted:
		return nil
	default:
		return fmt.Errorf("run %d %s: %s", runID, outcome, reason)
	}
}

// graceful returns a context for the work a signal interrupts: when ctx
// ends (SIGINT, SIGTERM), work in flight gets grace to finish before the
// returned context ends too.
func graceful(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	hard, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-ctx.Done():
		case <-hard.Done():
			return
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-hard.Done():
		}
	}()
	return hard, cancel
}

func runSweep(ctx context.Context, env *Env, c *common, opts sentry.SweepOptions) error {
	d, closeDeps, err := openDeps(ctx, env, c)
	if err != nil {
		return err
	}
	defer closeDeps()
	hard, cancel := graceful(ctx, d.Config.ShutdownGrace.D())
	defer cancel()
	label := "sweep"
	if opts.Deep {
		label = "deep sweep"
	}
	stop := showProgress(env, d, label)
	opts.Stop = ctx
	rep, err := sentry.Sweep(hard, d, opts)
	stop()
	if err != nil {
		return err
	}
	if c.format == "json" {
		err = writeJSON(env.Stdout, rep)
	} else {
		err = writeSweepTable(env.Stdout, rep, c.wide)
	}
	if err != nil {
		return err
	}
	return outcomeError(rep.RunID, rep.Outcome, rep.Reason)
}

func runDaemon(ctx context.Context, env *Env, c *common) error {
	d, closeDeps, err := openDeps(ctx, env, c)
	if err != nil {
		return err
	}
	defer closeDeps()
	// The page, /api/ and /metrics read through a small pool of their
	// own, so that no flood of requests takes the connections the runs
	// and their lease heartbeats need.
	pageStore, err := store.OpenAs(ctx, d.Config.Database.URL, d.Config.HTTP.DBConns, "sentry web")
	if err != nil {
		return err
	}
	defer pageStore.Close()
	m := metrics.New(pageStore.Pool(), env.Logger)
	d.Observer = observe.All(d.Observer, m)
	var next func(time.Time) time.Time
	if spec, err := cron.ParseStandard(d.Config.Schedule.Sweep); err == nil { // validated with the configuration
		next = func(t time.Time) time.Time { return spec.Next(t.UTC()) }
	}
	page, err := web.New(web.Options{Reporter: report.New(pageStore.Pool(), nil), Logger: env.Logger, NextSweep: next})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	page.Register(mux)
	mux.Handle("GET /metrics", m.Handler())
	return sentry.RunDaemon(ctx, d, sentry.DaemonOptions{Mux: mux})
}
