// Package sentry wires sentry together: the run engine (package engine)
// with its two jobs, prime (package prime) and sweep (package sweep), the
// operations a command asks for (Prime, Sweep), and the daemon (RunDaemon).
//
// The house, from the top down (docs/layout.md gives every package of the
// repository a line):
//   - sentry/cli: the command line; it calls this package;
//   - sentry: this wiring, the daemon (cron schedules, the release hook,
//     pruning) and the mail's set-up;
//   - sentry/hook, sentry/web, sentry/metrics, sentry/notify: what the
//     daemon serves and who is told — the release hook and /healthz, the
//     status page and /api/, Prometheus metrics, webhooks and the mail to
//     mirror admins and operators;
//   - sentry/prime, sentry/sweep: the jobs, and sentry/mirrorjob, what they
//     do alike;
//   - sentry/engine: runs and their work rows, shared by every sentry on the
//     database (claims, leases, fencing, judging);
//   - sentry/decide: the decisions, as pure functions (marks, guard,
//     hysteresis, quorum, certificates, maintenance);
//   - sentry/release, sentry/manifest: resolving a release against the
//     master, and parsing its checksum manifest;
//   - sentry/record: writing checks in batches;
//   - sentry/report: what reports, the status page, the metrics and the
//     mails read, computed in SQL;
//   - sentry/store: the bouncer database;
//   - sentry/config, sentry/observe: configuration, and what observers
//     (metrics, notifications, a command's progress line) are told;
//   - sentry/internal/dburl, sentry/internal/humanize: database URLs
//     checked before they are parsed; numbers and durations for people;
//   - sentry/demo, with sentry/demo/pgcluster, sentry/demo/localmirror,
//     sentry/demo/faultmirror and sentry/demo/democa: the throwaway world
//     of `sentry demo` (PostgreSQL clusters, a master and mirrors, hostile
//     mirrors, the certificate authority of its https mirrors), which the
//     tests use too;
//   - sentry/configfuzz: the configuration loader's fuzz target.
//
// Outside sentry/: checks (the probers of one file on one mirror) and
// primer (priming one mirror), which the jobs use.
package sentry

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/mirrorjob"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/prime"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/store"
	"github.com/mirrorsentry/sentry/sentry/sweep"
)

// Deps are what a run works with. The command line wires them from the
// configuration; tests wire them to throwaway databases and local mirrors.
type Deps struct {
	Config *config.Config
	Store  *store.Store
	Client *checks.Client
	Logger *slog.Logger
	// Now is the clock of sweeps' bookkeeping (check times, deep-sweep
	// rotation); nil means time.Now. Tests simulate days with it.
	Now func() time.Time
	// Observer, when set, is told of every check, state change, guard
	// activation and finished run (metrics, notifications, progress).
	Observer observe.Observer
	// Sampler picks the blocks sampled primes read (verify.mode sampled);
	// nil: a secret random seed. Tests fix the seed, so that what they
	// sample is the same every time.
	Sampler *checks.Sampler
}

// NewClient builds the checks client the configuration describes.
func NewClient(cfg *config.Config, log *slog.Logger) (*checks.Client, error) {
	retries := cfg.Checks.Retries
	if retries == 0 {
		retries = checks.NoRetries
	}
	roots, err := RootPool(cfg)
	if err != nil {
		return nil, err
	}
	return checks.NewClient(checks.ClientOptions{
		RootCAs:         roots,
		UserAgent:       cfg.UserAgent(),
		ConnectTimeout:  cfg.Checks.ConnectTimeout.D(),
		HeaderTimeout:   cfg.Checks.HeaderTimeout.D(),
		BodyIdleTimeout: cfg.Checks.BodyIdleTimeout.D(),
		MinRate:         cfg.Checks.MinRate.Bytes(),
		Retries:         retries,
		RetryWaitMin:    cfg.Checks.RetryWaitMin.D(),
		RetryWaitMax:    cfg.Checks.RetryWaitMax.D(),
		Logger:          log,
		SourceAddress:   cfg.Checks.SourceAddress,
	})
}

// RootPool is the certificate pool of checks.ca_file beside the system's,
// nil (the system's alone) without one: mirrors' certificates and the
// mail relay's are verified against it.
func RootPool(cfg *config.Config) (*x509.CertPool, error) {
	if cfg.Checks.CAFile == "" {
		return nil, nil
	}
	extra, err := config.ReadCAFile(cfg.Checks.CAFile)
	if err != nil {
		return nil, fmt.Errorf("%w: checks.ca_file %w", config.ErrInvalid, err)
	}
	return checks.RootPool(extra)
}

// NewEngine builds this process's run engine, with the prime and sweep
// jobs. A process holds as many mirrors at once as it can keep busy
// (checks.concurrency / checks.per_mirror_concurrency), so that the other
// sentries find work too.
func NewEngine(d *Deps) (*engine.Engine, error) {
	cfg := d.Config
	global := semaphore.NewWeighted(int64(max(cfg.Checks.Concurrency, 1)))
	obs := observe.Or(d.Observer)
	pj := &prime.Job{Config: cfg, Store: d.Store, Client: d.Client, Logger: d.Logger, Observer: obs, Global: global, Sampler: d.Sampler}
	sj := &sweep.Job{Config: cfg, Store: d.Store, Client: d.Client, Logger: d.Logger, Observer: obs, Global: global, Now: d.Now}
	perMirror := max(cfg.Checks.PerMirrorConcurrency, 1)
	return engine.New(d.Store, engine.Options{
		// A prime's rows come first, and a sweep's wait behind them, so
		// that a new release is not kept waiting behind sweeps (migration
		// 0013 gives the runs of older sentries the same priorities).
		Jobs: map[string]engine.Kind{
			prime.Kind:  {Job: pj, Priority: 10},
			sweep.Light: {Job: sj, Yield: true, Group: sweep.Group, Busy: sweep.ErrRunning},
			sweep.Deep:  {Job: sj, Yield: true, Group: sweep.Group, Busy: sweep.ErrRunning},
		},
		Vantage:  cfg.Vantage,
		Lease:    cfg.Cluster.Lease.D(),
		Poll:     cfg.Cluster.Poll.D(),
		Slots:    max(1, (cfg.Checks.Concurrency+perMirror-1)/perMirror),
		Logger:   d.Logger,
		Observer: obs,
	})
}

// PrimeOptions are the arguments of a prime.
type PrimeOptions struct {
	Release string
	// Force re-downloads files that an earlier run of this release already
	// verified on a mirror (by default a re-run resumes). A forced prime
	// does not join one already running: it is refused (a RunningError).
	Force bool
	// Refuse a prime of the release already running (the release hook's
	// 409) instead of joining it and waiting for its end (a command).
	Refuse bool
	// Mirrors, when set, restricts the prime to the active mirrors of
	// these names; a name that is not one fails the run.
	Mirrors []string
	// Engine and Worker, when set, are the daemon's: the prime is then
	// worked by the daemon's worker with every other sentry. nil: a
	// command's, made for this prime.
	Engine *engine.Engine
	Worker *engine.Worker
	// Stop ends this process's part: see engine.Request.Stop. nil: ctx.
	Stop context.Context
	// Started, when set, is called once the run is recorded (the release
	// hook answers with its id).
	Started func(run engine.Run, joined bool)
}

// Prime primes and verifies a release on every active mirror and marks the
// bouncer tables, with every sentry on the database. It returns an error
// only when the prime could not be done (bad release name, schema not
// migrated, manifest unusable, database unreachable); failing mirrors are
// data, in the report. The report's Outcome is "guarded" when the
// mass-failure guard held back marking mirrors down, and "interrupted"
// when ctx ended first (mirrors completed before that are marked; the
// others are untouched, and a re-run resumes). A prime of a release
// already being primed joins that run and reports it (Report.Joined).
func Prime(ctx context.Context, d *Deps, opts PrimeOptions) (*prime.Report, error) {
	if err := release.ValidateName(opts.Release); err != nil {
		return nil, err
	}
	fin, err := drive(ctx, d, opts.Engine, engine.Request{
		Kind: prime.Kind, Params: prime.Request{Release: opts.Release, Force: opts.Force, Mirrors: opts.Mirrors},
		Key: prime.Key(opts.Release), Join: !opts.Force && !opts.Refuse,
		Worker: opts.Worker, Stop: opts.Stop, Started: opts.Started,
	})
	if err != nil {
		return nil, err
	}
	names, err := mirrorNames(ctx, d)
	if err != nil {
		return nil, err
	}
	rep, err := prime.Summarize(fin, names)
	if err != nil {
		return nil, err
	}
	d.Logger.Info("prime finished", "release", opts.Release, "run", rep.RunID, "outcome", rep.Outcome, "reason", rep.Reason)
	if rep.MasterCopyWrong && rep.Outcome == store.OutcomeFailed {
		// The release is unusable, as a manifest that cannot be read is:
		// the prime could not be done (nothing was marked).
		return nil, fmt.Errorf("run %d: %w", rep.RunID, masterCopyError(rep.MasterCopy))
	}
	return rep, nil
}

// masterCopyError is the error of a prime whose master copy was found
// wrong: msg says so, and wraps release.ErrMasterCopy.
type masterCopyError string

func (e masterCopyError) Error() string { return string(e) }
func (e masterCopyError) Unwrap() error { return release.ErrMasterCopy }

// SweepOptions are the arguments of a sweep.
type SweepOptions struct {
	// Deep also hashes a rotating share of (mirror, file) pairs.
	Deep bool
	// Mirrors, when set, restricts the sweep to the active mirrors of
	// these names; a name that is not one fails the run.
	Mirrors []string
	// Slot, when set, is the scheduled time this sweep is for: of several
	// sentries on one database, only the first to start a slot runs it;
	// the others get engine.ErrSlotTaken (and help with it). Queue waits
	// for a running scheduled sweep to end instead of failing with
	// sweep.ErrRunning.
	Slot  time.Time
	Queue bool
	// Engine and Worker, when set, are the daemon's (see PrimeOptions).
	Engine *engine.Engine
	Worker *engine.Worker
	// Stop, when it ends, stops this process's part: a command stops
	// claiming mirrors, its checks in flight go on until ctx ends (a
	// shutdown's grace), and the sweep is recorded as interrupted. nil:
	// ctx.
	Stop context.Context
}

// Sweep checks every active mirror (package sweep), with every sentry on
// the database. It returns an error only when the sweep could not be done.
func Sweep(ctx context.Context, d *Deps, opts SweepOptions) (*sweep.Report, error) {
	kind := sweep.Light
	if opts.Deep {
		kind = sweep.Deep
	}
	fin, err := drive(ctx, d, opts.Engine, engine.Request{
		Kind: kind, Params: sweep.Request{Deep: opts.Deep, Mirrors: opts.Mirrors}, Slot: opts.Slot, Queue: opts.Queue,
		Worker: opts.Worker, Stop: opts.Stop,
	})
	if err != nil {
		return nil, err
	}
	names, err := mirrorNames(ctx, d)
	if err != nil {
		return nil, err
	}
	rep, err := sweep.Summarize(fin, names)
	if err == nil {
		d.Logger.Info("sweep finished", "run", rep.RunID, "kind", rep.Kind, "outcome", rep.Outcome, "reason", rep.Reason)
	}
	return rep, err
}

// drive runs req on eng (a new engine when nil), once the schema is
// current and the settings are usable.
func drive(ctx context.Context, d *Deps, eng *engine.Engine, req engine.Request) (*engine.Finished, error) {
	if err := d.Store.RequireSchema(ctx); err != nil {
		return nil, err
	}
	if eng == nil { // the daemon checked at its start
		if err := CheckSettings(ctx, d); err != nil {
			return nil, err
		}
	}
	if eng == nil {
		var err error
		if eng, err = NewEngine(d); err != nil {
			return nil, err
		}
	}
	return eng.Drive(ctx, req)
}

// CheckSettings finds, before any work starts, the configuration a run
// would stumble on, by the rules `sentry mirror set` applies
// (mirrorjob.CheckSettings): trigger mirrors (sentry_mirror_settings.
// prime_mode) with no trigger secret configured refuse the run — its
// error wraps config.ErrInvalid and names the mirrors — and any other
// setting a run cannot use (written by hand) is logged, naming the mirror
// and the setting: the run goes on, and the mirror fails alone where the
// setting is used (a trigger_url that is not a URL: not primed; a bad
// rsync_url: not listed; a bad purge_url: not purged).
func CheckSettings(ctx context.Context, d *Deps) error {
	ms, err := d.Store.ActiveMirrors(ctx)
	if err != nil {
		return err
	}
	secret := d.Config.Trigger.Secret != ""
	var trig []string
	for _, m := range ms {
		for _, p := range mirrorjob.CheckSettings(m.BaseURL, m.Settings(), secret) {
			if errors.Is(p, mirrorjob.ErrNoTriggerSecret) {
				trig = append(trig, m.Name)
				continue
			}
			d.Logger.Warn("a mirror setting is unusable: fix it with `sentry mirror set`", "mirror", m.Name, "problem", p.Error())
		}
	}
	if len(trig) == 0 {
		return nil
	}
	more := ""
	if len(trig) > 5 {
		trig, more = trig[:5], fmt.Sprintf(" and %d more", len(trig)-5)
	}
	return fmt.Errorf("%w: no trigger secret is configured (trigger.secret, or %s), and active mirrors %s%s are trigger "+
		"mirrors (sentry_mirror_settings.prime_mode): set a secret of at least 16 bytes (openssl rand -hex 32)",
		config.ErrInvalid, config.EnvTriggerSecret, strings.Join(trig, ", "), more)
}

// mirrorNames names the active mirrors, for the rows of a report that were
// never done.
func mirrorNames(ctx context.Context, d *Deps) (map[int]string, error) {
	readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	ms, err := d.Store.ActiveMirrors(readCtx)
	if err != nil {
		return nil, err
	}
	names := make(map[int]string, len(ms))
	for _, m := range ms {
		names[m.ID] = m.Name
	}
	return names, nil
}

// ErrStopped is returned when this process stopped before the run ended:
// the run goes on with the other sentries.
var ErrStopped = engine.ErrStopped
