package sentry

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
	"time"

	"github.com/robfig/cron/v3"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// SweepOptions are the arguments of a sweep.
type SweepOptions struct {
	// Deep also hashes a rotating share of (mirror, file) pairs, so that
	// every pair is re-hashed within sweep.deep_period, and every pair whose
	// ETag, Last-Modified or size changed since its last hash.
	Deep bool
	// Stop, when it ends, stops the sweep from starting checks; checks in
	// flight go on until ctx ends (a shutdown's grace). nil: ctx alone.
	Stop context.Context
	// Slot, when set, is the scheduled time this sweep is for: of several
	// processes sweeping one database, only the first to claim a slot runs
	// it; the others get store.ErrSlotTaken.
	Slot time.Time
	// Worker, when set, is the daemon's worker, which does the sweep with
	// the other instances; Sweep then only records the run and waits for
	// it. nil: the sweep gets a worker of its own (a command).
	Worker *Worker
}

// SweepReport is what a sweep found.
type SweepReport struct {
	RunID      int64             `json:"run_id"`
	Kind       string            `json:"kind"` // sweep or deep_sweep
	Outcome    string            `json:"outcome"`
	Reason     string            `json:"reason,omitempty"`
	StartedAt  time.Time         `json:"started_at"`
	FinishedAt time.Time         `json:"finished_at"`
	Releases   []string          `json:"releases"`
	Files      int               `json:"files"` // files behind the locations of active products
	Mirrors    []MirrorSweepSums `json:"mirrors"`
}

// MirrorSweepSums is one mirror's line of a sweep report.
type MirrorSweepSums struct {
	ID        int    `json:"id"`
	Name      string `json:"name"`
	Reachable bool   `json:"reachable"`
	// Checked files: OK (present, size right, hash right when hashed),
	// Unchanged (a 304 to a conditional request), Failed.
	Checked      int                 `json:"checked"`
	OK           int                 `json:"ok"`
	Unchanged    int                 `json:"unchanged"`
	Failed       int                 `json:"failed"`
	Hashed       int                 `json:"hashed"`
	Failures     map[checks.Kind]int `json:"failures"`
	FirstFailure string              `json:"first_failure,omitempty"`
	// SweepFailed: the mirror failed this sweep as a whole (unreachable,
	// or nothing present and only transient failures).
	SweepFailed bool `json:"sweep_failed"`
	// State is the mirror's state after the sweep; StateChanged says it
	// changed in this sweep.
	State        string `json:"state"`
	StateChanged bool   `json:"state_changed"`
	// FailingFrom and CheckedFrom are the vantage points the mirror failed
	// from, and those that checked it; Partial: it failed from some, fewer
	// than the quorum, so the sweep did not count against it.
	FailingFrom []string `json:"failing_from"`
	CheckedFrom []string `json:"checked_from"`
	Partial     bool     `json:"partial"`
	Note        string   `json:"note,omitempty"`
	Seconds     float64  `json:"seconds"`
	interrupted bool
}

// sweepFile is a release file behind an active location.
type sweepFile struct {
	key  store.FileKey
	file primer.File
	dir  string // the release directory
}

// sweepLocation is a location with the files it stands for.
type sweepLocation struct {
	id    int
	files []langKey
}

type langKey struct {
	lang string
	key  store.FileKey
}

// Sweep checks every active mirror: reachability, then presence and size of
// every file behind the locations of active products of the releases sentry
// knows (HEAD, conditional where the mirror gave validators before), and
// with Deep, checksums of a rotating share. Mirror state follows with
// hysteresis (state.down_after, state.up_after); definitive file facts
// (missing, wrong size or checksum) mark their locations at once; the
// mass-failure guard applies as for Prime. It returns an error only when the
// sweep could not be done.
//
// The sweep is shared: it is recorded as one work row per mirror, and every
// `sentry run` on the database (at any vantage point) helps: each vantage
// point checks every mirror's reachability, one process checks a mirror's
// files, and the mirror's state follows the quorum of vantage points
// (state.quorum). Without other processes, this one does it all.
func Sweep(ctx context.Context, d *Deps, opts SweepOptions) (*SweepReport, error) {
	if err := d.Store.RequireSchema(ctx); err != nil {
		return nil, err
	}
	closeStaleRuns(ctx, d)
	kind := store.RunSweep
	if opts.Deep {
		kind = store.RunDeepSweep
	}
	set, err := buildSweepSet(ctx, d, nil)
	if err != nil {
		return nil, err
	}
	mirrors, err := d.Store.ActiveMirrors(ctx)
	if err != nil {
		return nil, err
	}
	stop := opts.Stop
	if stop == nil {
		stop = ctx
	}
	w, own, finish, err := runWorker(ctx, d, opts.Worker, stop)
	if err != nil {
		return nil, err
	}
	defer finish()
	ids, names := mirrorIDs(mirrors)
	run, claims, err := d.Store.CreateRun(ctx, store.NewRun{Kind: kind, Slot: opts.Slot, Vantage: d.Config.Vantage,
		Instance: w.id, Params: sweepParams{Deep: opts.Deep, Releases: nonNil(set.releaseIDs)},
		Mirrors: ids, Reach: true, Lease: w.lease, Claim: w.free()}, nil)
	if err != nil {
		return nil, err
	}
	log := d.Logger.With("run", run.ID, "kind", kind)
	log.Info("sweep started", "mirrors", len(mirrors), "files", len(set.files), "releases", len(set.releases))
	report := &SweepReport{RunID: run.ID, Kind: kind, StartedAt: run.StartedAt, Files: len(set.files),
		Releases: []string{}}
	for _, r := range set.releases {
		report.Releases = append(report.Releases, r.Name)
	}
	if own {
		w.start(run.ID)
	}
	w.adopt(run.ID, &runWork{sweep: newSweepRun(w, run, opts.Deep, set, mirrors)}, claims)
	st, err := w.waitRun(ctx, stop, run.ID)
	if err != nil {
		if !own {
			return nil, errStopped // the other instances go on with it
		}
		// This command's own run: stop claiming, let checks in flight end
		// (until ctx does), and close the run without judging anything.
		finish()
		reason := "interrupted: checks stored, no state changed and nothing marked"
		endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := endRunRetrying(endCtx, d, run.ID, store.OutcomeInterrupted, reason); err != nil {
			return nil, err
		}
		st = store.RunStatus{Outcome: store.OutcomeInterrupted, Reason: reason}
		d.observer().RunFinished(RunEvent{RunID: run.ID, Kind: kind, Outcome: st.Outcome,
			Started: run.StartedAt, Finished: time.Now()})
	}
	report.Outcome, report.Reason = st.Outcome, st.Reason
	readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	err = d.Store.WorkRows(readCtx, run.ID, func(r store.WorkRow) error {
		var res sweepRowResult
		if r.Result != nil {
			if err := json.Unmarshal(r.Result, &res); err != nil {
				return fmt.Errorf("read the sweep of mirror %d: %w", r.MirrorID, err)
			}
		}
		if res.Gone {
			return nil
		}
		if r.Result == nil {
			res.Sums = MirrorSweepSums{ID: r.MirrorID, Name: names[r.MirrorID], Failures: map[checks.Kind]int{},
				Note: "not checked: the sweep ended first"}
		}
		report.Mirrors = append(report.Mirrors, res.Sums)
		return nil
	})
	if err != nil {
		return nil, err
	}
	report.FinishedAt = time.Now()
	log.Info("sweep finished", "outcome", report.Outcome, "reason", report.Reason)
	return report, nil
}

// runWorker returns the worker a prime or sweep runs on: the daemon's,
// or, for a command, one of its own (own true), registered now and
// started once the run exists. finish stops an own worker (idempotent).
func runWorker(ctx context.Context, d *Deps, shared *Worker, stop context.Context) (w *Worker, own bool, finish func(), err error) {
	if shared != nil {
		return shared, false, func() {}, nil
	}
	wstop, cancel := context.WithCancel(stop)
	w, err = newWorker(ctx, d, workerOptions{role: store.RoleCommand, stop: wstop, work: ctx})
	if err != nil {
		cancel()
		return nil, false, nil, err
	}
	var once sync.Once
	return w, true, func() {
		once.Do(func() {
			cancel()
			w.shutdown(-1)
		})
	}, nil
}

// sweepParams are what every worker of a sweep needs to do its part.
type sweepParams struct {
	Deep     bool    `json:"deep"`
	Releases []int64 `json:"releases"`
}

// sweepRowResult is one mirror's sweep, as a work row keeps it: the sums,
// and the locations its files say are good or missing.
type sweepRowResult struct {
	Sums    MirrorSweepSums `json:"sums"`
	Good    []int           `json:"good,omitempty"`
	Missing []int           `json:"missing,omitempty"`
	// Gone: the mirror was deactivated or deleted since the run began.
	Gone bool `json:"gone,omitempty"`
}

// vantageVerdict is what one vantage point found of a mirror in a sweep.
type vantageVerdict struct {
	// Failed: unreachable, or (from the vantage point that checked the
	// files) nothing present and only transient failures.
	Failed    bool   `json:"failed"`
	Reachable bool   `json:"reachable"`
	Kind      string `json:"kind,omitempty"`
	Why       string `json:"why,omitempty"`
}

// prepareSweep builds what a worker needs to do rows of a sweep.
func prepareSweep(ctx context.Context, w *Worker, run store.Run, raw []byte) (*sweepRun, error) {
	var p sweepParams
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("read the parameters of run %d: %w", run.ID, err)
	}
	d := w.d
	set, err := buildSweepSet(ctx, d, p.Releases)
	if err != nil {
		return nil, err
	}
	mirrors, err := d.Store.ActiveMirrors(ctx)
	if err != nil {
		return nil, err
	}
	return newSweepRun(w, run, p.Deep, set, mirrors), nil
}

// newSweepRun is a worker's means to sweep the mirrors of a run.
func newSweepRun(w *Worker, run store.Run, deep bool, set *sweepSet, mirrors []store.Mirror) *sweepRun {
	sw := &sweepRun{
		d: w.d, log: w.log.With("run", run.ID, "kind", run.Kind), run: run, deep: deep, set: set, stop: w.stop,
		rec: w.rec, global: w.global, now: w.d.now(), mirrors: make(map[int]store.Mirror, len(mirrors)),
	}
	for _, m := range mirrors {
		sw.mirrors[m.ID] = m
	}
	sw.gap = deepGap(w.d.Config, sw.now)
	return sw
}

// row does this vantage point's part of one mirror's sweep: its
// reachability and, when still to do and the mirror answers, its files.
// nil: not finished (stopping, or sentry's own trouble); give it back.
func (sw *sweepRun) row(ctx context.Context, c store.Claim) *store.WorkDone {
	m, ok := sw.mirrors[c.MirrorID]
	if !ok {
		return &store.WorkDone{Result: sweepRowResult{Gone: true}}
	}
	ms := &mirrorSweep{m: m, results: map[store.FileKey]fileResult{},
		sums: MirrorSweepSums{ID: m.ID, Name: m.Name, Failures: map[checks.Kind]int{}}}
	kind := sw.sweepMirror(ctx, ms, c.Files)
	defer sw.d.Client.Forget(m.BaseURL)
	if ms.sums.interrupted {
		return nil
	}
	if !ms.sums.Reachable {
		return &store.WorkDone{Unreachable: true,
			Verdict: vantageVerdict{Failed: true, Kind: string(kind), Why: ms.sums.FirstFailure}}
	}
	if !c.Files {
		return &store.WorkDone{Verdict: vantageVerdict{Reachable: true}}
	}
	good, missing := sw.settle(ms)
	v := vantageVerdict{Reachable: true, Failed: sweepFailed(&ms.sums)}
	if v.Failed {
		v.Why = ms.sums.FirstFailure
	}
	return &store.WorkDone{Verdict: v, Result: sweepRowResult{Sums: ms.sums, Good: good, Missing: missing}}
}

// buildSweepSet maps the locations of active products of every known
// release (of only those, when only is not nil) onto their manifests.
func buildSweepSet(ctx context.Context, d *Deps, only []int64) (*sweepSet, error) {
	rels, err := d.Store.KnownReleases(ctx)
	if err != nil {
		return nil, err
	}
	set := &sweepSet{}
	seen := map[store.FileKey]bool{}
	for _, rel := range rels {
		if only != nil && !slices.Contains(only, rel.ID) {
			continue
		}
		files, err := d.Store.ReleaseFiles(ctx, rel.ID)
		if err != nil {
			return nil, err
		}
		byPath := make(map[string]store.ReleaseFile, len(files))
		for _, f := range files {
			byPath[f.Path] = f
		}
		p := &plan{dir: d.Config.ReleaseDir(rel.Name)}
		has := func(path string) bool { _, ok := byPath[path]; return ok }
		if err := p.mapLocations(ctx, d, has, rel.Name, true); err != nil {
			return nil, err
		}
		if len(p.locations) == 0 {
			continue
		}
		set.releases = append(set.releases, rel)
		set.releaseIDs = append(set.releaseIDs, rel.ID)
		for _, l := range p.locations {
			sl := sweepLocation{id: l.ID}
			for _, lf := range l.Files {
				k := store.FileKey{ReleaseID: rel.ID, Path: lf.Path}
				sl.files = append(sl.files, langKey{lang: lf.Lang, key: k})
				if !seen[k] {
					seen[k] = true
					f := byPath[lf.Path]
					set.files = append(set.files, sweepFile{key: k, dir: p.dir,
						file: primer.File{Path: f.Path, Size: f.Size, Algo: f.Algo, Hash: f.Hash}})
				}
			}
			set.locations = append(set.locations, sl)
		}
	}
	return set, nil
}

type sweepSet struct {
	releases   []store.Release
	releaseIDs []int64
	files      []sweepFile
	locations  []sweepLocation
}

// deepGap is the time between two deep sweeps by schedule.deep_sweep: the
// share of pairs a deep sweep hashes is derived from it and
// sweep.deep_period.
func deepGap(cfg *Config, now time.Time) time.Duration {
	sched, err := cron.ParseStandard(cfg.Schedule.DeepSweep)
	if err != nil {
		return cfg.Sweep.DeepPeriod.D()
	}
	n1 := sched.Next(now.UTC())
	return sched.Next(n1).Sub(n1)
}

type sweepRun struct {
	d       *Deps
	log     *slog.Logger
	run     store.Run
	deep    bool
	set     *sweepSet
	stop    context.Context
	rec     *Recorder
	global  *semaphore.Weighted
	now     time.Time
	gap     time.Duration
	mirrors map[int]store.Mirror // active when the worker prepared the run
}

type mirrorSweep struct {
	m       store.Mirror
	prev    store.MirrorState
	files   map[store.FileKey]store.FileState
	mu      sync.Mutex
	results map[store.FileKey]fileResult
	// good and missing are the locations the mirror's files say are good
	// or missing (settle, or the work row when judging).
	good, missing []int
	// verdicts are the vantage points' verdicts on the mirror (judging).
	verdicts map[string]vantageVerdict
	sums     MirrorSweepSums
	failAt   time.Time
}

type fileResult struct {
	kind     checks.Kind
	verified bool // the file is known right: hashed now, or hashed before and unchanged since
}

// sweepMirror checks a mirror's reachability and, with files, its files.
// It returns the kind of the reachability check.
func (sw *sweepRun) sweepMirror(ctx context.Context, ms *mirrorSweep, files bool) checks.Kind {
	start := time.Now()
	defer func() { ms.sums.Seconds = time.Since(start).Seconds() }()
	if files {
		// The row is this instance's: wait out a passing outage rather
		// than give the mirror back unchecked.
		err := retryDB(ctx, sw.log.With("mirror_id", ms.m.ID), "reading file states", markRetryFor, func() (err error) {
			ms.files, err = sw.d.Store.MirrorFileStates(ctx, ms.m.ID, sw.set.releaseIDs)
			return err
		})
		if err != nil {
			ms.sums.interrupted, ms.sums.Note = true, "could not read file states: "+err.Error()
			return checks.KindInternal
		}
	}
	if sw.stop.Err() != nil || sw.global.Acquire(ctx, 1) != nil {
		ms.sums.interrupted = true
		return checks.KindInternal
	}
	reach := checks.Reachable(ctx, sw.d.Client, ms.m.BaseURL)
	sw.global.Release(1)
	if ctx.Err() != nil {
		ms.sums.interrupted = true
		return reach.Kind
	}
	sw.record(ctx, ms, "", 0, "HEAD", reach)
	ms.sums.Reachable = !reach.Kind.Failed()
	if !ms.sums.Reachable {
		ms.sums.FirstFailure = fmt.Sprintf("%s %s: %s", reach.Kind, ms.m.BaseURL, reach.Detail)
		ms.sums.Failures[reach.Kind]++
		return reach.Kind
	}
	if !files {
		return reach.Kind
	}
	hash := map[store.FileKey]bool{}
	if sw.deep {
		hash = pickForHash(sw.set.files, ms.files, sw.now, sw.d.Config.Sweep.DeepPeriod.D(), sw.gap)
	}
	conc := ms.m.MaxConcurrency
	if conc <= 0 {
		conc = sw.d.Config.Checks.PerMirrorConcurrency
	}
	var g errgroup.Group
	g.SetLimit(conc)
	for _, f := range sw.set.files {
		if sw.stop.Err() != nil || ctx.Err() != nil {
			ms.sums.interrupted = true
			break
		}
		g.Go(func() error {
			if sw.global.Acquire(ctx, 1) != nil {
				return nil
			}
			defer sw.global.Release(1)
			sw.checkFile(ctx, ms, f, hash[f.key])
			return nil
		})
	}
	_ = g.Wait()
	if ctx.Err() != nil {
		ms.sums.interrupted = true
	}
	return reach.Kind
}

// checkFile checks one file: HEAD (conditional when the mirror gave
// validators before) or, when picked for hashing, a full GET through the
// hash.
func (sw *sweepRun) checkFile(ctx context.Context, ms *mirrorSweep, f sweepFile, hash bool) {
	prev, known := ms.files[f.key]
	t := checks.Target{URL: primer.FileURL(ms.m.BaseURL, f.dir, f.file.Path), Size: f.file.Size,
		Algo: f.file.Algo, Hash: f.file.Hash}
	var res checks.Result
	method := "HEAD"
	if hash {
		method = "GET"
		res = checks.Verify(ctx, sw.d.Client, t)
	} else {
		if known && prev.Result == "ok" {
			t.ETag, t.LastModified = prev.ETag, prev.LastModified
		}
		res = checks.Head(ctx, sw.d.Client, t)
	}
	if res.Kind == checks.KindInternal && ctx.Err() != nil {
		return
	}
	sw.record(ctx, ms, f.file.Path, f.key.ReleaseID, method, res)
	verified := false
	switch {
	case res.Kind == checks.KindOK && res.Hashed:
		verified = true
	case res.Kind == checks.KindUnchanged:
		verified = known && prev.Verified && !prev.Rehash
	case res.Kind == checks.KindOK:
		verified = known && prev.Verified && !prev.Rehash && !validatorsChanged(prev, res)
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.results[f.key] = fileResult{kind: res.Kind, verified: verified}
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

func (sw *sweepRun) record(ctx context.Context, ms *mirrorSweep, path string, releaseID int64, method string, res checks.Result) {
	err := sw.rec.Add(ctx, store.Check{
		RunID: sw.run.ID, MirrorID: ms.m.ID, ReleaseID: releaseID, Path: path, CheckedAt: sw.d.now(),
		Vantage: sw.d.Config.Vantage, Method: method, Result: string(res.Kind), Status: res.Status,
		Bytes: res.Bytes, Hashed: res.Hashed, Duration: res.Duration, Attempts: res.Attempts,
		CacheStatus: res.CacheStatus, Detail: res.Detail, ETag: res.ETag, LastModified: res.LastModified,
		Size: res.Bytes,
	})
	if err == nil {
		sw.d.observer().CheckDone(CheckEvent{RunKind: sw.run.Kind, Mirror: ms.m.Name, Result: res.Kind,
			BytesVerified: verifiedBytes(res)})
	}
}

// pickForHash chooses the pairs of one mirror a deep sweep hashes: every
// pair never hashed, flagged for a re-hash, or hashed so long ago that it
// would pass deep_period before the next deep sweep; then the pairs hashed
// longest ago, up to the share ceil(files × gap / period). Over deep_period
// every pair is hashed at least once.
func pickForHash(files []sweepFile, states map[store.FileKey]store.FileState, now time.Time, period, gap time.Duration) map[store.FileKey]bool {
	out := make(map[store.FileKey]bool)
	if len(files) == 0 {
		return out
	}
	if gap <= 0 || gap >= period {
		for _, f := range files {
			out[f.key] = true
		}
		return out
	}
	share := int(math.Ceil(float64(len(files)) * float64(gap) / float64(period)))
	overdue := now.Add(-(period - gap))
	order := make([]sweepFile, len(files))
	copy(order, files)
	hashedAt := func(f sweepFile) time.Time { return states[f.key].HashedAt }
	sort.SliceStable(order, func(i, j int) bool { return hashedAt(order[i]).Before(hashedAt(order[j])) })
	for _, f := range order {
		st, ok := states[f.key]
		must := !ok || st.HashedAt.IsZero() || st.Rehash || !st.HashedAt.After(overdue)
		if must || len(out) < share {
			out[f.key] = true
		}
	}
	return out
}

// judge applies the quorum of vantage points, the guard and hysteresis,
// and marks every mirror.
func (sw *sweepRun) judge(ctx context.Context, all []*mirrorSweep, q quorum) (string, string) {
	// A mirror sentry could not finish checking (its own trouble) is
	// neither counted nor marked.
	var mirrors []*mirrorSweep
	for _, ms := range all {
		if !ms.sums.interrupted {
			mirrors = append(mirrors, ms)
		}
	}
	ignored := q.apply(mirrors, sw.d.Config.Guard.MaxDownFraction)
	for _, v := range ignored {
		sw.log.Warn("vantage point failed most mirrors: not counting its verdicts (its own network?)", "vantage", v)
	}
	failed := 0
	for _, ms := range mirrors {
		if ms.sums.SweepFailed {
			failed++
		}
	}
	guard := ""
	anyBad := failed > 0
	for _, ms := range mirrors {
		if len(ms.missing) > 0 {
			anyBad = true
		}
		for k := range ms.sums.Failures {
			if k.Definitive() {
				anyBad = true
			}
		}
	}
	if anyBad {
		mc := newMasterCheck(sw.d, sw.masterURL())
		if up, why := mc.up(ctx); !up {
			guard = why
		} else if frac := float64(failed) / float64(max(len(mirrors), 1)); failed > 0 && frac > sw.d.Config.Guard.MaxDownFraction {
			guard = fmt.Sprintf("%d of %d mirrors failed the sweep (more than guard.max_down_fraction %.2f): suspecting sentry's own network",
				failed, len(mirrors), sw.d.Config.Guard.MaxDownFraction)
		}
	}
	if guard != "" {
		sw.log.Warn("mass-failure guard: not counting failures nor marking anything down", "why", guard)
		sw.d.observer().GuardHeld(GuardEvent{At: time.Now(), RunID: sw.run.ID, RunKind: sw.run.Kind,
			Mirrors: failed, Reason: guard})
	}
	for _, ms := range mirrors {
		sw.markMirror(ctx, ms, guard)
	}
	note := ""
	if len(ignored) > 0 {
		note = fmt.Sprintf("verdicts of vantage points %s not counted: they failed more than guard.max_down_fraction of the mirrors",
			strings.Join(ignored, ", "))
	}
	if guard != "" {
		return store.OutcomeGuarded, joinNonEmpty("; ", "mass-failure guard held back marking: "+guard, note)
	}
	return store.OutcomeCompleted, note
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

// quorum is how many vantage points must find a mirror failing for a sweep
// to count against it, out of how many were seen.
type quorum struct {
	need, seen int
}

// apply sets each mirror's FailingFrom, CheckedFrom and SweepFailed from
// the vantage points' verdicts. When more than one vantage point took part,
// one that failed more than maxDown of the mirrors it checked is suspected
// of its own network trouble and its verdicts are not counted; apply
// returns those.
func (q quorum) apply(mirrors []*mirrorSweep, maxDown float64) []string {
	checked, failed := map[string]int{}, map[string]int{}
	for _, ms := range mirrors {
		for v, vd := range ms.verdicts {
			checked[v]++
			if vd.Failed {
				failed[v]++
			}
		}
	}
	var ignored []string
	if len(checked) > 1 {
		for v, n := range checked {
			if failed[v] > 0 && float64(failed[v])/float64(n) > maxDown {
				ignored = append(ignored, v)
			}
		}
		sort.Strings(ignored)
		if len(ignored) == len(checked) {
			// Every vantage point failing most mirrors is not one
			// network's trouble: the mass-failure guard decides.
			ignored = nil
		}
	}
	for _, ms := range mirrors {
		s := &ms.sums
		s.FailingFrom, s.CheckedFrom = []string{}, []string{}
		for v, vd := range ms.verdicts {
			if slices.Contains(ignored, v) {
				continue
			}
			s.CheckedFrom = append(s.CheckedFrom, v)
			if vd.Failed {
				s.FailingFrom = append(s.FailingFrom, v)
			}
		}
		sort.Strings(s.FailingFrom)
		sort.Strings(s.CheckedFrom)
		s.SweepFailed = len(s.FailingFrom) > 0 && len(s.FailingFrom) >= q.need
		s.Partial = len(s.FailingFrom) > 0 && !s.SweepFailed
	}
	return ignored
}

// masterURL is what the guard asks the master for: the manifest of the
// newest known release, or the master's base URL.
func (sw *sweepRun) masterURL() string {
	if n := len(sw.set.releases); n > 0 {
		return sw.d.Config.ManifestURL(sw.set.releases[n-1].Name)
	}
	return sw.d.Config.Master.URL + "/"
}

// sweepFailed: unreachable, or files checked and none present while every
// failure was transient.
func sweepFailed(s *MirrorSweepSums) bool {
	if !s.Reachable {
		return true
	}
	if s.Checked == 0 || s.OK+s.Unchanged > 0 {
		return false
	}
	for k := range s.Failures {
		if !k.Transient() {
			return false
		}
	}
	return true
}

// markMirror applies hysteresis to one mirror and writes its state, marks
// and log row in one transaction. With guard set, failures neither count
// towards the state nor mark anything down.
func (sw *sweepRun) markMirror(ctx context.Context, ms *mirrorSweep, guard string) {
	s := &ms.sums
	cfg := sw.d.Config.State
	st := ms.prev
	upd := &store.StateUpdate{State: st.State, FailStreak: st.FailStreak, OkStreak: st.OkStreak, At: sw.d.now(), RunID: sw.run.ID,
		FailingFrom: s.FailingFrom, CheckedFrom: s.CheckedFrom}
	why := sw.sweepReason(ms)
	switch {
	case s.SweepFailed && guard != "":
		why += "; not counted: " + guard
	case s.SweepFailed:
		upd.FailStreak, upd.OkStreak = st.FailStreak+1, 0
		if st.State == store.StateUp && upd.FailStreak >= cfg.DownAfter {
			upd.State, upd.From = store.StateDown, store.StateUp
			why = fmt.Sprintf("down after %d failed sweeps: %s", upd.FailStreak, why)
		} else if st.State == store.StateUp {
			why += fmt.Sprintf("; failed sweep %d of %d before down", upd.FailStreak, cfg.DownAfter)
		}
	default:
		upd.OkStreak, upd.FailStreak = st.OkStreak+1, 0
		if st.State == store.StateDown && upd.OkStreak >= cfg.UpAfter {
			upd.State, upd.From = store.StateUp, store.StateDown
			why = fmt.Sprintf("up after %d good sweeps: %s", upd.OkStreak, why)
		} else if st.State == store.StateDown {
			why += fmt.Sprintf("; good sweep %d of %d before up", upd.OkStreak, cfg.UpAfter)
		}
	}
	upd.Reason = why
	s.State, s.StateChanged = upd.State, upd.From != ""

	var marks []store.LocationMark
	if s.Reachable {
		marks = sw.locationMarks(ms, upd.State == store.StateUp)
	}
	if guard != "" {
		kept := marks[:0]
		for _, l := range marks {
			if l.Mark == store.MarkGood {
				kept = append(kept, l)
			}
		}
		marks = kept
	}
	err := markRetrying(ctx, sw.d, sw.log, store.MirrorMarks{
		MirrorID: ms.m.ID, Rating: ms.m.Rating, LogDate: sw.run.StartedAt, Up: upd.State == store.StateUp,
		Reason: why, Locations: marks, Down: upd.State == store.StateDown && guard == "", State: upd,
	})
	if err != nil {
		sw.log.Error("marking failed", "mirror", ms.m.Name, "err", err)
		s.Note = "marking failed: " + err.Error()
		return
	}
	if s.StateChanged {
		sw.log.Info("mirror state changed", "mirror", ms.m.Name, "from", upd.From, "to", upd.State, "reason", why)
		sw.d.observer().StateChanged(StateChangeEvent{At: upd.At, RunID: sw.run.ID, MirrorID: ms.m.ID,
			Mirror: ms.m.Name, BaseURL: ms.m.BaseURL, From: upd.From, To: upd.State, Reason: why})
	}
}

// locationMarks: a definitive fact about any file takes its location off at
// once; while the mirror is up, a location whose files are all present and
// known right (hashed now or before, unchanged since) is good; anything
// else (transient trouble, files never hashed) leaves the location as it
// is: hysteresis acts on the mirror, not on one flaky answer.
func (sw *sweepRun) locationMarks(ms *mirrorSweep, up bool) []store.LocationMark {
	marks := make([]store.LocationMark, 0, len(ms.missing)+len(ms.good))
	for _, id := range ms.missing {
		marks = append(marks, store.LocationMark{LocationID: id, Mark: store.MarkMissing})
	}
	if up {
		for _, id := range ms.good {
			marks = append(marks, store.LocationMark{LocationID: id, Mark: store.MarkGood})
		}
	}
	return marks
}

// settle reduces a finished mirror to what marking needs: the locations
// its files say are good (every file present and known right) and missing
// (a file missing or wrong). Locations with a file not judged (not
// checked, or sentry's own trouble) are in neither.
func (sw *sweepRun) settle(ms *mirrorSweep) (good, missing []int) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for _, l := range sw.set.locations {
		ok, bad, judged := true, false, true
		for _, lk := range l.files {
			r, seen := ms.results[lk.key]
			switch {
			case !seen || r.kind == checks.KindInternal:
				judged = false
			case r.kind.Definitive():
				bad = true
			case !r.verified:
				ok = false
			}
		}
		switch {
		case bad:
			missing = append(missing, l.id)
		case judged && ok:
			good = append(good, l.id)
		}
	}
	ms.results, ms.files = nil, nil
	return good, missing
}

func (sw *sweepRun) sweepReason(ms *mirrorSweep) string {
	s := &ms.sums
	kind := "sweep"
	if sw.deep {
		kind = "deep sweep"
	}
	if !s.Reachable {
		return fmt.Sprintf("%s: unreachable: %s", kind, s.FirstFailure) + vantageNote(s)
	}
	r := fmt.Sprintf("%s: %d/%d files present", kind, s.OK+s.Unchanged, s.Checked)
	if s.Hashed > 0 {
		r += fmt.Sprintf(" (%d hashed)", s.Hashed)
	}
	if s.Failed > 0 {
		r += fmt.Sprintf(", %d failed (%s); first: %s", s.Failed, kindCounts(s.Failures), s.FirstFailure)
	}
	return strings.TrimSpace(r) + vantageNote(s)
}

// vantageNote says, when several vantage points checked a mirror, which it
// failed from.
func vantageNote(s *MirrorSweepSums) string {
	switch {
	case len(s.CheckedFrom) < 2 || len(s.FailingFrom) == 0:
		return ""
	case s.Partial:
		return fmt.Sprintf("; partially unreachable: failing from %s only (%d of %d vantage points, fewer than the quorum)",
			strings.Join(s.FailingFrom, ", "), len(s.FailingFrom), len(s.CheckedFrom))
	default:
		return fmt.Sprintf("; failing from %s (%d of %d vantage points)",
			strings.Join(s.FailingFrom, ", "), len(s.FailingFrom), len(s.CheckedFrom))
	}
}
