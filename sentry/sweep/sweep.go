// Package sweep is the sweep job: between releases, it re-checks every
// active mirror — reachability, then presence and size of every file behind
// the locations of active products of the releases sentry knows, by HEAD
// (conditional where the mirror gave validators before), and in a deep
// sweep the checksums of a rotating share of (mirror, file) pairs.
//
// A sweep is shared (package engine): each vantage point checks every
// mirror's reachability, one sentry checks a mirror's files, and the run's
// judgement counts the vantage points' verdicts against the quorum,
// applies the mass-failure guard and each mirror's hysteresis, and marks
// the bouncer tables.
//
// The files follow a sweep: sweep.go plans it (Plan, Prepare); set.go is
// what it checks (the releases' files behind active locations, their
// manifests read again); mirror.go is one mirror's part (Work: its
// reachability, then its files, settled into locations), checkfile.go one
// file's check (and the catch-up hashing of files not verified where they
// must be), families.go a dual-stack mirror's files checked over each
// address family, rsync.go the listing that stands in for HEADs, deep.go what a
// deep sweep hashes; reach.go whether a mirror answers (over each address
// family), familyverdicts.go how its address families are judged,
// certs.go its certificate recorded (and a warning of its end),
// maintenance.go a mirror in a maintenance window left alone, returning.go
// a suspended mirror re-verified before it is offered again; judge.go the
// judgement; report.go its report. What it does as the prime
// does — reading a run back, recording checks, announcing state changes,
// the guard's share, reading rows into a report — is package mirrorjob's.
package sweep

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/mirrorjob"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/store"
	"golang.org/x/sync/semaphore"
)

// The sweep's run kinds.
const (
	Light = store.RunSweep
	Deep  = store.RunDeepSweep
)

// Request is what a sweep is asked for.
type Request struct {
	// Deep also hashes a rotating share of (mirror, file) pairs, so that
	// every pair is re-hashed within sweep.deep_period, and every pair
	// whose ETag, Last-Modified or size changed since its last hash.
	Deep bool `json:"deep"`
	// Mirrors, when set, restricts the sweep to the active mirrors of these
	// names (`sentry sweep --mirror NAME`).
	Mirrors []string `json:"mirrors,omitempty"`
}

// Job is the sweep job, for light and deep sweeps. One Job serves every
// sweep of the process.
type Job struct {
	Config   *config.Config
	Store    *store.Store
	Client   *checks.Client
	Logger   *slog.Logger
	Observer observe.Observer
	// Global caps this process's requests in flight across all mirrors.
	Global *semaphore.Weighted
	// Now is the clock of the sweep's bookkeeping (check times, the deep
	// sweep's rotation); nil means time.Now. Tests simulate days with it.
	Now func() time.Time
}

func (j *Job) now() time.Time {
	if j.Now != nil {
		return j.Now()
	}
	return time.Now()
}

// params are what every worker of a sweep needs to do its part.
type params struct {
	// Withdrawn are the locations taken off every mirror when the sweep
	// began (their files left the manifest), for its report.
	Withdrawn []release.Unresolved `json:"withdrawn,omitempty"`
	// Rejected are the changed manifests refused when the sweep began,
	// their signatures not verifying, for its report.
	Rejected []release.Rejection `json:"rejected,omitempty"`
	Deep     bool                `json:"deep"`
	Releases []int64             `json:"releases"`
	Names    []string            `json:"release_names"`
	Files    int                 `json:"files"`
	// Restricted: the sweep covers the mirrors it was asked for only.
	Restricted bool `json:"restricted,omitempty"`
}

// rowResult is one mirror's sweep as a work row keeps it: the sums, and
// the locations its files say are good or missing.
type rowResult struct {
	Sums    MirrorSums `json:"sums"`
	Good    []int      `json:"good,omitempty"`
	Missing []int      `json:"missing,omitempty"`
	// Withheld are locations present but not verified yet where they must
	// be (decide.Withheld).
	Withheld []int `json:"withheld,omitempty"`
	// Verified: a file is known right there (verified now, or before and
	// unchanged since): sentry has verified the mirror (decide.Vouch).
	Verified bool `json:"verified,omitempty"`
	// Gone: the mirror was deactivated or deleted since the run began.
	Gone bool `json:"gone,omitempty"`
}

// verdict is what one vantage point found of a mirror in a sweep.
type verdict struct {
	// Failed: unreachable, or (from the vantage point that checked the
	// files) nothing present and only transient failures.
	Failed    bool   `json:"failed"`
	Reachable bool   `json:"reachable"`
	Kind      string `json:"kind,omitempty"`
	Why       string `json:"why,omitempty"`
	adminVerdict
}

// adminVerdict is what a vantage point found of a mirror besides its
// reachability.
type adminVerdict struct {
	// Families maps each address family the mirror was checked over to ""
	// (reached) or what failed; nil when it was checked over one only.
	Families map[string]string `json:"families,omitempty"`
	// Cert is the certificate of an https mirror.
	Cert *checks.Cert `json:"cert,omitempty"`
	// Maintenance: the mirror was in a maintenance window: not checked.
	Maintenance bool `json:"maintenance,omitempty"`
}

// Plan maps the locations of active products of every known release onto
// their manifests and gives the sweep a row per active mirror (of those
// asked for), to be reached from every vantage point. A sweep with no
// active mirror, or no file behind a location of an active product, fails
// here (release.ErrNothingToDo): it would check nothing the redirector
// serves.
func (j *Job) Plan(ctx context.Context, run engine.Run) (engine.Plan, error) {
	var req Request
	if err := mirrorjob.ReadRequest(run, &req); err != nil {
		return engine.Plan{}, err
	}
	mirrors, err := mirrorjob.ActiveMirrors(ctx, j.Store, req.Mirrors)
	if err != nil {
		return engine.Plan{}, err
	}
	if err := mirrorjob.NoteSwitchedOff(ctx, j.Store, j.Logger.With("run", run.ID)); err != nil {
		return engine.Plan{}, err
	}
	set, err := j.buildSet(ctx, nil, true)
	if err != nil {
		return engine.Plan{}, err
	}
	for _, rj := range set.rejected {
		observe.ManifestRejected(observe.Or(j.Observer), observe.ManifestEvent{At: j.now(), RunID: run.ID, RunKind: run.Kind,
			Release: rj.Release, URL: rj.URL, Reason: rj.Reason})
	}
	// Locations withdrawn from their manifest come off every mirror
	// whatever else the sweep finds: the manifest says so.
	w := store.Withdrawals{Respun: set.respun}
	for _, u := range set.withdrawn {
		w.Withdrawn = append(w.Withdrawn, u.LocationID)
	}
	for _, l := range set.locations {
		w.Resolved = append(w.Resolved, l.id)
	}
	if n, err := j.Store.Withdraw(ctx, w); err != nil {
		return engine.Plan{}, err
	} else if n > 0 {
		j.Logger.Warn("withdrawn and respun locations taken off their mirrors", "run", run.ID,
			"withdrawn", len(w.Withdrawn), "respun", len(w.Respun), "rows", n)
	}
	if len(set.files) == 0 {
		return engine.Plan{}, j.nothingToSweep(ctx)
	}
	p := params{Deep: req.Deep, Releases: []int64{}, Names: []string{}, Files: len(set.files), Restricted: len(req.Mirrors) > 0,
		Withdrawn: set.withdrawn, Rejected: set.rejected}
	for _, r := range set.releases {
		p.Releases, p.Names = append(p.Releases, r.Release.ID), append(p.Names, r.Release.Name)
	}
	j.Logger.Info("sweep started", "run", run.ID, "kind", run.Kind, "mirrors", len(mirrors), "files", len(set.files),
		"releases", len(set.releases))
	t := j.newTask(run, req.Deep, set, mirrors)
	t.restricted = p.Restricted
	if t.admins, err = j.Store.MirrorAdmins(ctx); err != nil {
		return engine.Plan{}, err
	}
	return engine.Plan{Params: p, Mirrors: mirrorjob.IDs(mirrors), Reach: true, Task: t}, nil
}

// nothingToSweep is the error of a sweep with no file to check, naming
// the releases sentry knows.
func (j *Job) nothingToSweep(ctx context.Context) error {
	rels, err := j.Store.KnownReleases(ctx)
	if err != nil {
		return err
	}
	if len(rels) == 0 {
		return fmt.Errorf("%w: sentry knows no release yet (a release is known once primed: sentry prime --release R)", release.ErrNothingToDo)
	}
	names := make([]string, 0, 5)
	for i, r := range rels {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(rels)-5))
			break
		}
		names = append(names, r.Name)
	}
	return fmt.Errorf("%w: of the releases sentry knows (%s), none has a location of an active bouncer product "+
		"(mirror_products.active, releases.products %s) that maps onto its manifest", release.ErrNothingToDo,
		strings.Join(names, ", "), strings.Join(j.Config.Releases.Products, ", "))
}

// Interrupted is the reason of a sweep stopped before its end: it is
// closed without judging.
func (j *Job) Interrupted(error, int, int) string {
	return "interrupted: checks stored, no state changed and nothing marked"
}

// Prepare builds what this process needs to do rows of a sweep and judge
// it.
func (j *Job) Prepare(ctx context.Context, run engine.Run) (engine.Task, error) {
	var p params
	if err := mirrorjob.ReadParams(run, &p); err != nil {
		return nil, err
	}
	set, err := j.buildSet(ctx, p.Releases, false)
	if err != nil {
		return nil, err
	}
	mirrors, err := j.Store.ActiveMirrors(ctx)
	if err != nil {
		return nil, err
	}
	t := j.newTask(run, p.Deep, set, mirrors)
	t.restricted = p.Restricted
	if t.admins, err = j.Store.MirrorAdmins(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// newTask is a sweep of set on mirrors, as this process works it.
func (j *Job) newTask(run engine.Run, deep bool, set *set, mirrors []store.Mirror) *task {
	now := j.now()
	t := &task{job: j, log: j.Logger.With("run", run.ID, "kind", run.Kind), run: run, deep: deep, set: set,
		now: now, gap: deepGap(j.Config, now), mirrors: mirrorjob.ByID(mirrors)}
	return t
}

// task is one sweep as this process works it.
type task struct {
	job     *Job
	log     *slog.Logger
	run     engine.Run
	deep    bool
	set     *set
	now     time.Time
	gap     time.Duration
	mirrors map[int]store.Mirror // active when the task was prepared
	// restricted: the sweep covers the mirrors it was asked for only.
	restricted bool
	// admins is what the mirrors' admins said (maintenance windows,
	// suspended offers) when the task was prepared.
	admins map[int]store.MirrorAdmin
}
