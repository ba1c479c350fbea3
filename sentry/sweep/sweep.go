// Package sweep is the sweep job: between releases, it re-checks every
// active mirror — reachability, then presence and size of every file behind
// the locations of active products of the releases sentry knows, by HEAD
// (conditional where the mirror gave validators before), and in a deep
// sweep the checksums of a rotating share of (mirror, file) pairs.
//
// A sweep is shared (package engine): each vantage point checks every
// mirror's reachability, one sentry checks a mirror's files, and the run's
// judgement (judge.go) counts the vantage points' verdicts against the
// quorum, applies the mass-failure guard and each mirror's hysteresis, and
// marks the bouncer tables.
package sweep

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
	"golang.org/x/sync/semaphore"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/record"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/store"
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
	Deep      bool                 `json:"deep"`
	Releases  []int64              `json:"releases"`
	Names     []string             `json:"release_names"`
	Files     int                  `json:"files"`
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

// Plan maps the locations of active products of every known release onto
// their manifests and gives the sweep a row per active mirror (of those
// asked for), to be reached from every vantage point. A sweep with no
// active mirror, or no file behind a location of an active product, fails
// here (release.ErrNothingToDo): it would check nothing the redirector
// serves.
func (j *Job) Plan(ctx context.Context, run engine.Run) (engine.Plan, error) {
	var req Request
	if err := json.Unmarshal(run.Params, &req); err != nil {
		return engine.Plan{}, fmt.Errorf("read the request of run %d: %w", run.ID, err)
	}
	mirrors, err := j.Store.ActiveMirrors(ctx)
	if err != nil {
		return engine.Plan{}, err
	}
	if mirrors, err = release.Covered(mirrors, req.Mirrors); err != nil {
		return engine.Plan{}, err
	}
	if n, err := j.Store.NoteSwitchedOff(ctx); err != nil {
		return engine.Plan{}, err
	} else if n > 0 {
		j.Logger.Info("mirrors seen switched off: offered again only for files hashed after they return", "run", run.ID, "mirrors", n)
	}
	set, err := j.buildSet(ctx, nil, true)
	if err != nil {
		return engine.Plan{}, err
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
		Withdrawn: set.withdrawn}
	for _, r := range set.releases {
		p.Releases, p.Names = append(p.Releases, r.Release.ID), append(p.Names, r.Release.Name)
	}
	ids := make([]int, len(mirrors))
	for i, m := range mirrors {
		ids[i] = m.ID
	}
	j.Logger.Info("sweep started", "run", run.ID, "kind", run.Kind, "mirrors", len(mirrors), "files", len(set.files),
		"releases", len(set.releases))
	t := j.newTask(run, req.Deep, set, mirrors)
	t.restricted = p.Restricted
	if t.admins, err = j.Store.MirrorAdmins(ctx); err != nil {
		return engine.Plan{}, err
	}
	return engine.Plan{Params: p, Mirrors: ids, Reach: true, Task: t}, nil
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
	if err := json.Unmarshal(run.Params, &p); err != nil {
		return nil, fmt.Errorf("read the parameters of run %d: %w", run.ID, err)
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
		now: now, gap: deepGap(j.Config, now), mirrors: make(map[int]store.Mirror, len(mirrors))}
	for _, m := range mirrors {
		t.mirrors[m.ID] = m
	}
	return t
}

// set is what a sweep checks: the releases, their files behind active
// locations, and the locations.
type set struct {
	// withdrawn are the locations of active products whose files left
	// their release's manifest: taken off every mirror.
	withdrawn []release.Unresolved
	// respun are the locations of files whose manifest changed their size
	// or hash since the last sweep: off every mirror until verified again.
	respun     []int
	releases   []*release.Plan
	releaseIDs []int64
	files      []file
	locations  []location
	exceptions map[[2]int][]string
}

// file is a release file behind an active location.
type file struct {
	key  store.FileKey
	file primer.File
	dir  string // the release directory
	// urlPath is its URL's path under a mirror's base URL
	// (primer.FilePath), escaped once for every mirror.
	urlPath string
}

// location is a location with the files it stands for.
type location struct {
	id    int
	files []langKey
}

type langKey struct {
	lang string
	file int // its index in set.files
}

// buildSet maps the locations of active products of every known release
// (of only those, when only is not nil) onto their manifests.
//
// With watch (the sweep's plan), the manifest of every release it covers is
// read again, conditionally: a release whose manifest changed is recorded
// anew (what was known of its changed files is forgotten, so this sweep
// hashes them), its files that changed are taken off every mirror until
// verified again there, and its files that left it are withdrawn.
func (j *Job) buildSet(ctx context.Context, only []int64, watch bool) (*set, error) {
	rels, err := j.Store.KnownReleases(ctx)
	if err != nil {
		return nil, err
	}
	r := &release.Resolver{Config: j.Config, Store: j.Store, Client: j.Client}
	s := &set{releaseIDs: []int64{}}
	at := map[store.FileKey]int{} // a file's index in s.files
	var locIDs []int
	for _, rel := range rels {
		if only != nil && !slices.Contains(only, rel.ID) {
			continue
		}
		p, err := r.Known(ctx, rel, true)
		if err != nil {
			return nil, err
		}
		if watch && (len(p.Locations) > 0 || len(p.Withdrawn()) > 0) {
			if p, err = j.watch(ctx, r, p, s); err != nil {
				return nil, err
			}
		}
		for _, u := range p.Unresolved {
			if u.Withdrawn {
				s.withdrawn = append(s.withdrawn, u)
			}
		}
		if len(p.Locations) == 0 {
			continue
		}
		s.releases = append(s.releases, p)
		s.releaseIDs = append(s.releaseIDs, rel.ID)
		byPath := make(map[string]primer.File, len(p.Files))
		for _, f := range p.Files {
			byPath[f.Path] = f
		}
		for _, l := range p.Locations {
			sl := location{id: l.ID}
			locIDs = append(locIDs, l.ID)
			for _, lf := range l.Files {
				k := store.FileKey{ReleaseID: rel.ID, Path: lf.Path}
				i, ok := at[k]
				if !ok {
					i = len(s.files)
					at[k] = i
					s.files = append(s.files, file{key: k, dir: p.Dir, file: byPath[lf.Path], urlPath: primer.FilePath(p.Dir, lf.Path)})
				}
				sl.files = append(sl.files, langKey{lang: lf.Lang, file: i})
			}
			s.locations = append(s.locations, sl)
		}
	}
	if s.exceptions, err = j.Store.LangExceptions(ctx, locIDs); err != nil {
		return nil, err
	}
	return s, nil
}

// watch reads a release's manifest again and, when it changed, returns
// the release's plan from the new one, with the locations of its respun
// files added to s.respun. A manifest that cannot be read (the master
// away, a malformed line) leaves the known one in force: the sweep goes on.
func (j *Job) watch(ctx context.Context, r *release.Resolver, p *release.Plan, s *set) (*release.Plan, error) {
	rel, err := r.Refresh(ctx, p.Release)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		j.Logger.Warn("could not read the release's manifest again; sweeping by the known one", "release", p.Release.Name, "err", err)
		return p, nil
	}
	if !rel.Changed {
		return p, nil
	}
	j.Logger.Warn("the release's manifest changed", "release", rel.Name, "respun_files", len(rel.Respun))
	np, err := r.Known(ctx, rel, true)
	if err != nil {
		return nil, err
	}
	s.respun = append(s.respun, np.LocationsOf(rel.Respun)...)
	return np, nil
}

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

// mirrorSweep is one mirror's sweep in progress.
type mirrorSweep struct {
	m       store.Mirror
	files   map[store.FileKey]store.FileState
	mu      sync.Mutex
	results []fileResult // by index in set.files; nil for a row without files
	sums    MirrorSums
	failAt  time.Time
	// stopped: the sweep of the mirror could not be finished here.
	stopped bool
	// catchUp is what is left of the bytes this sweep may hash to catch
	// up on the mirror's files (sweep.catch_up_bytes).
	catchUp atomic.Int64
	// admin is what this vantage point found besides reachability.
	admin adminVerdict
}

type fileResult struct {
	seen     bool // checked (or confirmed by a listing) in this sweep
	kind     checks.Kind
	verified bool // known right: hashed now, or hashed before and unchanged since
	// withheld: present but not verified, where it must be before it is
	// offered (decide.Withheld).
	withheld bool
	hashed   bool
}

// Work does this vantage point's part of one mirror's sweep: its
// reachability and, when still to do and the mirror answers, its files.
func (t *task) Work(ctx context.Context, row *engine.Row) (engine.Result, bool) {
	m, ok := t.mirrors[row.MirrorID]
	if !ok {
		return engine.Result{Files: rowResult{Gone: true}}, true
	}
	defer t.job.Client.Forget(m.BaseURL)
	if in, why := t.inWindow(m.ID); in {
		v, files := t.maintenance(row, m, why)
		if files != nil {
			return engine.Result{Verdict: v, Files: *files}, true
		}
		return engine.Result{Verdict: v}, true
	}
	ctx = checks.Paced(ctx, t.job.Config.MirrorRate(m.MaxRate))
	ms := &mirrorSweep{m: m, sums: MirrorSums{ID: m.ID, Name: m.Name, Failures: map[checks.Kind]int{}}}
	if row.Files {
		ms.results = make([]fileResult, len(t.set.files))
	}
	ms.catchUp.Store(t.job.Config.Sweep.CatchUpBytes.Bytes())
	kind := t.sweepMirror(ctx, row, ms)
	if ms.stopped {
		return engine.Result{}, false
	}
	if !ms.sums.Reachable {
		return engine.Result{Unreachable: true,
			Verdict: verdict{Failed: true, Kind: string(kind), Why: ms.sums.FirstFailure, adminVerdict: ms.admin}}, true
	}
	if !row.Files {
		return engine.Result{Verdict: verdict{Reachable: true, adminVerdict: ms.admin}}, true
	}
	good, missing, withheld := t.settle(ms)
	ms.sums.Withheld = len(withheld)
	v := verdict{Reachable: true, Failed: decide.FailedWholesale(true, ms.sums.OK+ms.sums.Unchanged, ms.sums.Failures),
		adminVerdict: ms.admin}
	if v.Failed {
		v.Why = ms.sums.FirstFailure
	}
	return engine.Result{Verdict: v, Files: rowResult{Sums: ms.sums, Good: good, Missing: missing, Withheld: withheld}}, true
}

// sweepMirror checks a mirror's reachability and, when the row's files
// are to do, its files. It returns the kind of the reachability check.
func (t *task) sweepMirror(ctx context.Context, row *engine.Row, ms *mirrorSweep) checks.Kind {
	start := time.Now()
	defer func() { ms.sums.Seconds = time.Since(start).Seconds() }()
	if row.Files {
		// The row is this process's: wait out a passing outage rather
		// than give the mirror back unchecked.
		err := engine.Retry(ctx, t.log.With("mirror_id", ms.m.ID), "reading file states", engine.MarkRetryFor, func() (err error) {
			ms.files, err = t.job.Store.MirrorFileStates(ctx, ms.m.ID, t.set.releaseIDs, len(t.set.files))
			return err
		})
		if err != nil {
			ms.stopped, ms.sums.Note = true, "could not read file states: "+err.Error()
			return checks.KindInternal
		}
	}
	if t.job.Global.Acquire(ctx, 1) != nil {
		ms.stopped = true
		return checks.KindInternal
	}
	// A mirror that answers is what was known of it: counted only.
	reach, fams, pin := t.reachMirror(ctx, row, ms)
	t.job.Global.Release(1)
	if stopped(ctx, reach) {
		ms.stopped = true
		return reach.Kind
	}
	ms.admin.Families, ms.admin.Cert = fams, reach.Cert
	if pin != "" {
		ctx = checks.WithFamily(ctx, pin) // one family is broken: the files over one that answers
	}
	ms.sums.Reachable = !reach.Kind.Failed()
	if !ms.sums.Reachable {
		ms.sums.FirstFailure = fmt.Sprintf("%s %s: %s", reach.Kind, ms.m.BaseURL, reach.Detail)
		ms.sums.Failures[reach.Kind]++
		return reach.Kind
	}
	if !row.Files {
		return reach.Kind
	}
	var hash []bool // by index in set.files, as every per-file slice here
	if t.deep {
		hash = pickForHash(t.set.files, ms.files, t.now, t.job.Config.Sweep.DeepPeriod.D(), t.gap)
	} else {
		hash = make([]bool, len(t.set.files))
	}
	// A returning mirror's files not hashed since it was suspended are
	// hashed by the catch-up (checkFile); what is left of them after the
	// sweep says whether its return is complete.
	back := make([]bool, len(t.set.files))
	if t.returning(ms, back) > 0 {
		defer func() { ms.sums.ReturnLeft = t.returnLeft(ms, back) }()
	}
	conc := ms.m.MaxConcurrency
	if conc <= 0 {
		conc = t.job.Config.Checks.PerMirrorConcurrency
	}
	listing := t.listRsync(ctx, ms)
	sample := t.sample(ms, listing)
	// conc workers take the files in turn, each the next by its index: a
	// goroutine (and its grown stack) per worker, not per file, and no
	// hand-over between goroutines per file.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(conc, len(t.set.files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(t.set.files) {
					return
				}
				f := t.set.files[i]
				fact := ""
				if listing != nil {
					l, ok := listing[strings.TrimPrefix(f.dir, "/")+f.file.Path]
					if ok {
						fact = l.Fact()
					}
					if !hash[i] && !sample[i] && t.listedAsKnown(ms, f, l, ok) {
						t.confirmListed(ctx, row, ms, i, f)
						continue
					}
				}
				if t.job.Global.Acquire(ctx, 1) != nil {
					return
				}
				t.checkFile(ctx, row, ms, i, f, hash[i], fact)
				t.job.Global.Release(1)
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		ms.stopped = true
	}
	return reach.Kind
}

// listRsync lists the releases' directories of a mirror with an rsync URL
// in one connection. It returns nil — check every file over HTTP — for a
// mirror without one, for a pull-through cache (what it lists is the
// master's, not what it serves), and when the listing fails (refused, no
// such module, a timeout: noted, not held against the mirror).
func (t *task) listRsync(ctx context.Context, ms *mirrorSweep) map[string]checks.Listed {
	if ms.m.RsyncURL == "" || ms.m.Mode == store.ModePull || len(t.set.releases) == 0 {
		return nil
	}
	sources := make([]string, len(t.set.releases))
	for i, r := range t.set.releases {
		sources[i] = checks.RsyncSource(ms.m.RsyncURL, r.Dir)
	}
	cfg := t.job.Config.Checks
	listing, err := checks.ListRsync(ctx, checks.RsyncOptions{ConnectTimeout: cfg.ConnectTimeout.D(),
		IOTimeout: cfg.HeaderTimeout.D(), MaxEntries: 4*len(t.set.files) + 10_000, SourceAddress: cfg.SourceAddress}, sources)
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("rsync listing failed; checking the mirror over HTTP", "mirror", ms.m.Name, "err", err)
			ms.sums.Note = "rsync listing failed, checked over HTTP: " + err.Error()
		}
		return nil
	}
	ms.sums.RsyncListed = true
	return listing
}

// sampleShare is the share of an rsync mirror's files still checked over
// HTTP each sweep (at least one): the proof that the HTTP side serves what
// rsync lists. It rotates, so that every file is checked over HTTP every
// 1/sampleShare sweeps.
const sampleShare = 0.01

// sample picks, by position, the files of an rsync-listed mirror checked
// over HTTP anyway in this sweep: a window of the file list that moves on
// with every run.
func (t *task) sample(ms *mirrorSweep, listing map[string]checks.Listed) map[int]bool {
	n := len(t.set.files)
	if listing == nil || n == 0 {
		return nil
	}
	k := max(1, int(math.Ceil(float64(n)*sampleShare)))
	start := int((t.run.ID*int64(k) + int64(ms.m.ID)) % int64(n))
	out := make(map[int]bool, k)
	for i := range k {
		out[(start+i)%n] = true
	}
	return out
}

// listedAsKnown reports whether a file's listing confirms what sentry knew
// of it: listed with the manifest's size, listed as the last listing said,
// and its state good and verified.
func (t *task) listedAsKnown(ms *mirrorSweep, f file, l checks.Listed, listed bool) bool {
	prev, known := ms.files[f.key]
	return listed && l.Size == f.file.Size && known && prev.Result == string(checks.KindOK) && prev.Verified && !prev.Rehash &&
		prev.Listed == l.Fact()
}

// confirmListed records a file the listing confirmed: what was known,
// counted only, without a request.
func (t *task) confirmListed(ctx context.Context, row *engine.Row, ms *mirrorSweep, i int, f file) {
	res := checks.Result{Kind: checks.KindUnchanged, Bytes: f.file.Size, Attempts: 1, Detail: "listed by rsync as before"}
	t.record(ctx, row, ms, f.file.Path, f.key.ReleaseID, "RSYNC", res, true, "")
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.results[i] = fileResult{seen: true, kind: checks.KindUnchanged, verified: true}
	ms.sums.Checked++
	ms.sums.Unchanged++
	ms.sums.Listed++
}

// checkFile checks one file: HEAD (conditional when the mirror gave
// validators before) or, when picked for hashing, a full GET through the
// hash. A HEAD that finds the file present where it is not verified (new
// to sentry on the mirror, failing before, changed, or verified only
// before the mirror was suspended) is followed by the GET, within the
// mirror's catch-up budget; a file that does not fit is withheld. listed
// is what an rsync listing said of it ("" for none), kept in its state.
func (t *task) checkFile(ctx context.Context, row *engine.Row, ms *mirrorSweep, i int, f file, hash bool, listed string) {
	prev, known := ms.files[f.key]
	tg := checks.Target{URL: strings.TrimSuffix(ms.m.BaseURL, "/") + f.urlPath, Size: f.file.Size,
		Algo: f.file.Algo, Hash: f.file.Hash, PreviousHash: f.file.PreviousHash}
	var res checks.Result
	method := "HEAD"
	if !hash {
		if known && prev.Result == "ok" {
			tg.ETag, tg.LastModified = prev.ETag, prev.LastModified
		}
		res = checks.Head(ctx, t.job.Client, tg)
		if res.Kind == checks.KindInternal && ctx.Err() != nil {
			return
		}
		if must, wasFailing := catchUp(prev, known, res); must {
			// Recorded: the HEAD is what the file's state learns from if
			// the budget says no.
			hash = t.takeCatchUp(ms, f.file.Size, wasFailing)
			if !hash {
				t.record(ctx, row, ms, f.file.Path, f.key.ReleaseID, method, res, false, listed)
				t.tally(ms, i, f, res, fileResult{kind: res.Kind, withheld: true})
				return
			}
		}
	}
	if hash {
		// Unconditional: validators never stand in for bytes.
		method, tg.ETag, tg.LastModified = "GET", "", ""
		res = checks.Verify(ctx, t.job.Client, tg)
		// A cache serving a respun file wrong is purged, where it lets
		// sentry, and the file fetched again.
		res = primer.RefreshStale(ctx, t.job.Client, primer.Purge{Method: ms.m.PurgeMethod, URL: ms.m.PurgeURL}, ms.m.BaseURL, f.file, tg, res)
	}
	if res.Kind == checks.KindInternal && ctx.Err() != nil {
		return
	}
	// A HEAD that finds the file as its state says (present, the same
	// size and validators) is what was known: counted only.
	routine := !res.Hashed && known && prev.Result == string(checks.KindOK) && prev.Listed == listed &&
		(res.Kind == checks.KindUnchanged || res.Kind == checks.KindOK && !validatorsChanged(prev, res))
	t.record(ctx, row, ms, f.file.Path, f.key.ReleaseID, method, res, routine, listed)
	verified := false
	switch {
	case res.Kind == checks.KindOK && res.Hashed:
		verified = true
	case res.Kind == checks.KindUnchanged:
		verified = known && prev.Verified && !prev.Rehash
	case res.Kind == checks.KindOK:
		verified = known && prev.Verified && !prev.Rehash && !validatorsChanged(prev, res)
	}
	t.tally(ms, i, f, res, fileResult{kind: res.Kind, verified: verified})
}

// catchUp reports whether a file a HEAD found present must be hashed
// before it is offered, and whether it was failing (then it is hashed
// whatever the budget: a fixed file is offered again within one sweep):
//   - sentry never verified it on the mirror: hashed;
//   - its body was wrong (checksum_mismatch, too_large): hashed when the
//     mirror changed it (validators or size), else it is the same wrong
//     body, left to the deep sweeps;
//   - it was failing otherwise (missing, transient trouble): hashed;
//   - the mirror changed it since its last hash, or its verification
//     predates the mirror's suspension: hashed.
func catchUp(prev store.FileState, known bool, res checks.Result) (hash, wasFailing bool) {
	if res.Kind != checks.KindOK && res.Kind != checks.KindUnchanged {
		return false, false
	}
	switch {
	case !known:
		return true, false
	case prev.Result == string(checks.KindChecksumMismatch) || prev.Result == string(checks.KindTooLarge):
		return validatorsChanged(prev, res), true
	case prev.Result != string(checks.KindOK):
		return true, true
	}
	return !prev.Verified || prev.Rehash || res.Kind == checks.KindOK && validatorsChanged(prev, res), false
}

// takeCatchUp takes size bytes from the mirror's catch-up budget and
// reports whether they were there. A file that was failing is always
// hashed, and so is the first file to reach an exhausted budget at all, so
// that a file larger than the budget is hashed too.
func (t *task) takeCatchUp(ms *mirrorSweep, size int64, wasFailing bool) bool {
	if wasFailing {
		ms.catchUp.Add(-max(size, 0))
		return true
	}
	for {
		left := ms.catchUp.Load()
		if left <= 0 {
			return false
		}
		if ms.catchUp.CompareAndSwap(left, left-max(size, 1)) {
			return true
		}
	}
}

// tally adds the result of file i to the mirror's sweep.
func (t *task) tally(ms *mirrorSweep, i int, f file, res checks.Result, fr fileResult) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	fr.seen, fr.hashed = true, res.Hashed
	ms.results[i] = fr
	ms.sums.Checked++
	switch {
	case res.Kind == checks.KindUnchanged:
		ms.sums.Unchanged++
	case res.Kind == checks.KindOK:
		ms.sums.OK++
	default:
		ms.sums.Failed++
		ms.sums.Failures[res.Kind]++
		now := time.Now()
		if ms.failAt.IsZero() || now.Before(ms.failAt) {
			ms.failAt = now
			ms.sums.FirstFailure = fmt.Sprintf("%s %s: %s", res.Kind, f.file.Path, res.Detail)
		}
	}
	if res.Hashed {
		ms.sums.Hashed++
	}
}

// validatorsChanged reports whether an answer's ETag, Last-Modified or size
// differ from what the mirror said when the file was last checked.
func validatorsChanged(prev store.FileState, res checks.Result) bool {
	return (res.ETag != "" && prev.ETag != "" && res.ETag != prev.ETag) ||
		(res.LastModified != "" && prev.LastModified != "" && res.LastModified != prev.LastModified) ||
		(res.Bytes >= 0 && prev.Size >= 0 && res.Bytes != prev.Size)
}

// record hands a check to the recorder (routine: only counted) and tells
// the observers.
func (t *task) record(ctx context.Context, row *engine.Row, ms *mirrorSweep, path string, releaseID int64, method string,
	res checks.Result, routine bool, listed string) {
	c := record.Check(res, releaseID, path, method, t.job.now(), t.job.Config.Vantage)
	c.Routine, c.Listed, c.Family = routine, listed, string(checks.FamilyOf(ctx))
	if row.Record(ctx, c) == nil {
		observe.Or(t.job.Observer).CheckDone(observe.CheckEvent{RunKind: t.run.Kind, RunID: t.run.ID, Mirror: ms.m.Name, MirrorID: ms.m.ID,
			Path: path, At: c.CheckedAt, Result: res.Kind, Hashed: res.Hashed, Routine: routine,
			BytesVerified: observe.VerifiedBytes(res)})
	}
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

// settle reduces a finished mirror to what marking needs: the locations
// its files say are good, missing and withheld (decide.Location; the
// mirror's language exceptions excuse files).
func (t *task) settle(ms *mirrorSweep) (good, missing, withheld []int) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for _, l := range t.set.locations {
		excused := t.set.exceptions[[2]int{l.id, ms.m.ID}]
		files := make([]decide.File, len(l.files))
		for i, lk := range l.files {
			var r fileResult
			if lk.file < len(ms.results) {
				r = ms.results[lk.file]
			}
			files[i] = decide.File{Checked: r.seen, Kind: r.kind, Verified: r.verified, Withheld: r.withheld,
				Excused: lk.lang != "" && slices.Contains(excused, lk.lang)}
		}
		switch decide.Location(files) {
		case decide.Missing:
			missing = append(missing, l.id)
		case decide.Good:
			good = append(good, l.id)
		case decide.Withheld:
			withheld = append(withheld, l.id)
		}
	}
	ms.results, ms.files = nil, nil
	return good, missing, withheld
}
