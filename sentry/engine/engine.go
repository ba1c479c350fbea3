// Package engine runs primes and sweeps as shared work: every run is one
// sentry_runs row and one sentry_work row per mirror, and every sentry on
// the database works the rows together. The engine owns the runs and their
// rows — creating, claiming, leasing, heartbeats, giving back, taking
// over, judging once, ending, retrying the writes that matter — and knows
// the jobs (package prime, package sweep) only through the Job interface
// and the properties each registers with it (Kind: its priority, whether
// it yields, its group of runs that go one at a time). Adding a job is
// registering it; the engine's files do not change.
//
// Where to look:
//   - job.go: what a job registers and implements, and what it is given;
//   - drive.go: a run from start to end, as a command or the daemon asks for
//     it (one driver for every job);
//   - runs.go: recording runs, their work, their end;
//   - claim.go: how a row is claimed, and why a mirror is held by one row at
//     a time, whatever run it belongs to;
//   - lease.go: heartbeats, self-fencing and the fences that guard writes;
//   - judge.go: a run's last step, done once, retried when it fails.
//
// One process's share of the work is a Worker (worker.go: its life, from
// NewWorker to Shutdown), in parts with one job each:
//   - claimer.go: the claim loop, and the slots a worker never exceeds;
//   - holdings.go: what the worker holds under its leases, behind one lock;
//   - heartbeat.go: the heartbeat that renews those leases, and the
//     watchdog that stops the work whose lease lapsed;
//   - work.go: a claimed row worked, then completed or given back;
//   - judging.go: the runs this worker judges.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Engine is the run engine of one process: the jobs it knows, how it
// leases work, and the database. Build it with New; make a Worker with
// NewWorker (a daemon) or let Drive make one (a command).
type Engine struct {
	opts  Options
	store *store.Store
	pool  *pgxpool.Pool
	log   *slog.Logger
	obs   observe.Observer
	// known lists the kinds of opts.Jobs: the statements that claim
	// rows and judgings claim only runs of these.
	known []string
}

// Options configure an Engine. Zero fields take the defaults of
// WithDefaults.
type Options struct {
	// Jobs are the kinds of run this process can work, by kind
	// (sentry_runs.kind), each with its properties. This process claims
	// and judges only runs of these kinds.
	Jobs map[string]Kind
	// Vantage is this process's vantage point.
	Vantage string
	// Lease is how long a claimed row stays this process's without a
	// heartbeat (cluster.lease). Heartbeats come every third of it, and
	// work on a row stops by itself once two thirds have passed without
	// one (self-fencing), before anyone else may take the row over.
	Lease time.Duration
	// Poll is how often an idle worker looks for work when no
	// notification comes (cluster.poll).
	Poll time.Duration
	// Slots is how many rows (mirrors) a worker holds at once.
	Slots int
	// JudgeFor bounds how long a run whose rows are all done may wait for
	// its judgement (retried while it fails) before it ends as failed.
	JudgeFor time.Duration
	// PrepareRetry is the first wait before a run whose work could not
	// be prepared (Job.Prepare failed) is tried again, doubling up to a
	// minute; default 1s. PrepareFor bounds how long a row waits for its
	// run to be prepared before it is given back; default four leases.
	PrepareRetry, PrepareFor time.Duration
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
	// Observer is told of every run that ends; nil: nobody.
	Observer observe.Observer
}

// WithDefaults returns o with every zero field set to its default.
func (o Options) WithDefaults() Options {
	if o.Vantage == "" {
		o.Vantage = "default"
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
	if o.Slots <= 0 {
		o.Slots = 16
	}
	if o.JudgeFor <= 0 {
		o.JudgeFor = max(10*time.Minute, 20*o.Lease)
	}
	if o.PrepareRetry <= 0 {
		o.PrepareRetry = time.Second
	}
	if o.PrepareFor <= 0 {
		o.PrepareFor = 4 * o.Lease
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = observe.Nop
	}
	return o
}

// validate checks o, changing nothing.
func (o Options) validate() error {
	if len(o.Jobs) == 0 {
		return errors.New("engine: no jobs")
	}
	for name, k := range o.Jobs {
		switch {
		case name == "":
			return errors.New("engine: a job registered without a kind")
		case k.Job == nil:
			return fmt.Errorf("engine: kind %q registered without its job", name)
		case k.Busy != nil && k.Group == "":
			return fmt.Errorf("engine: kind %q has a busy error but no group", name)
		}
	}
	if o.Poll > o.Lease {
		return fmt.Errorf("engine: poll %s longer than the lease %s", o.Poll, o.Lease)
	}
	return nil
}

// New builds an engine over st.
func New(st *store.Store, o Options) (*Engine, error) {
	o = o.WithDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	return &Engine{opts: o, store: st, pool: st.Pool(), log: o.Logger, obs: o.Observer, known: kindNames(o.Jobs)}, nil
}

// kind returns what a run kind registered.
func (e *Engine) kind(kind string) (Kind, error) {
	k, ok := e.opts.Jobs[kind]
	if !ok {
		return Kind{}, fmt.Errorf("run kind %q is not one this sentry knows (an older version?)", kind)
	}
	return k, nil
}

// job returns the job of a run kind.
func (e *Engine) job(kind string) (Job, error) {
	k, err := e.kind(kind)
	return k.Job, err
}

// kindNames lists the kinds of jobs, sorted.
func kindNames(jobs map[string]Kind) []string {
	out := make([]string, 0, len(jobs))
	for k := range jobs {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// wrap adds context to a database error, through the store's wrapping
// (which never shows the password and keeps the chain).
func (e *Engine) wrap(what string, err error) error {
	return e.store.Wrap(what, err)
}

// detached is ctx without its cancellation, bounded by d: for the writes
// that must happen even as a run is being stopped (a run's end, a row
// given back).
func detached(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}
