package sentry

import (
	"context"
	"fmt"
	"log/slog"
	"math"
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
	State        string  `json:"state"`
	StateChanged bool    `json:"state_changed"`
	Note         string  `json:"note,omitempty"`
	Seconds      float64 `json:"seconds"`
	interrupted  bool
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
func Sweep(ctx context.Context, d *Deps, opts SweepOptions) (*SweepReport, error) {
	if err := d.Store.RequireSchema(ctx); err != nil {
		return nil, err
	}
	closeStaleRuns(ctx, d)
	kind := store.RunSweep
	if opts.Deep {
		kind = store.RunDeepSweep
	}
	set, err := buildSweepSet(ctx, d)
	if err != nil {
		return nil, err
	}
	mirrors, err := d.Store.ActiveMirrors(ctx)
	if err != nil {
		return nil, err
	}
	states, err := d.Store.MirrorStates(ctx)
	if err != nil {
		return nil, err
	}
	var run store.Run
	if opts.Slot.IsZero() {
		run, err = d.Store.StartRun(ctx, kind, 0, d.Config.Vantage)
	} else {
		run, err = d.Store.StartSlotRun(ctx, kind, opts.Slot, d.Config.Vantage)
	}
	if err != nil {
		return nil, err
	}
	stop := opts.Stop
	if stop == nil {
		stop = ctx
	}
	log := d.Logger.With("run", run.ID, "kind", kind)
	sw := &sweepRun{
		d: d, log: log, run: run, deep: opts.Deep, set: set, stop: stop,
		rec:    NewRecorder(d.Store, log),
		global: semaphore.NewWeighted(int64(d.Config.Checks.Concurrency)),
		now:    d.now(),
	}
	sw.gap = deepGap(d.Config, sw.now)
	log.Info("sweep started", "mirrors", len(mirrors), "files", len(set.files), "releases", len(set.releases))
	report := &SweepReport{RunID: run.ID, Kind: kind, StartedAt: run.StartedAt, Files: len(set.files),
		Releases: []string{}}
	for _, r := range set.releases {
		report.Releases = append(report.Releases, r.Name)
	}

	sums := make([]*mirrorSweep, len(mirrors))
	var wg sync.WaitGroup
	// At most checks.concurrency mirrors are swept at once (each running
	// one holds at least one request slot), so that memory, goroutines and
	// pooled connections stay flat however many mirrors there are: a
	// finished mirror keeps only one verdict per location (settle).
	slots := make(chan struct{}, max(d.Config.Checks.Concurrency, 1))
	for i, m := range mirrors {
		st, ok := states[m.ID]
		if !ok {
			st = store.MirrorState{MirrorID: m.ID, State: store.StateUp}
		}
		sums[i] = &mirrorSweep{m: m, prev: st, results: map[store.FileKey]fileResult{},
			sums: MirrorSweepSums{ID: m.ID, Name: m.Name, Failures: map[checks.Kind]int{}}}
		wg.Add(1)
		slots <- struct{}{}
		go func(ms *mirrorSweep) {
			defer wg.Done()
			defer func() { <-slots }()
			sw.sweepMirror(ctx, ms)
			sw.settle(ms)
			d.Client.Forget(ms.m.BaseURL)
		}(sums[i])
	}
	wg.Wait()

	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	recErr := sw.rec.Close(closeCtx)
	switch {
	case ctx.Err() != nil || stop.Err() != nil:
		report.Outcome = store.OutcomeInterrupted
		report.Reason = "interrupted: checks stored, no state changed and nothing marked"
	case recErr != nil:
		report.Outcome = store.OutcomeFailed
		report.Reason = "nothing marked: " + recErr.Error()
	default:
		report.Outcome, report.Reason = sw.judge(closeCtx, sums)
	}
	for _, ms := range sums {
		report.Mirrors = append(report.Mirrors, ms.sums)
	}
	if err := finishRun(closeCtx, d, run.ID, report.Outcome, report.Reason); err != nil {
		return report, err
	}
	report.FinishedAt = time.Now()
	d.observer().RunFinished(RunEvent{RunID: run.ID, Kind: kind, Outcome: report.Outcome,
		Started: run.StartedAt, Finished: report.FinishedAt})
	log.Info("sweep finished", "outcome", report.Outcome, "reason", report.Reason)
	return report, nil
}

// buildSweepSet maps the locations of active products of every known
// release onto their manifests.
func buildSweepSet(ctx context.Context, d *Deps) (*sweepSetT, error) {
	rels, err := d.Store.KnownReleases(ctx)
	if err != nil {
		return nil, err
	}
	set := &sweepSetT{}
	seen := map[store.FileKey]bool{}
	for _, rel := range rels {
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

type sweepSetT struct {
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
	d      *Deps
	log    *slog.Logger
	run    store.Run
	deep   bool
	set    *sweepSetT
	stop   context.Context
	rec    *Recorder
	global *semaphore.Weighted
	now    time.Time
	gap    time.Duration
}

type mirrorSweep struct {
	m       store.Mirror
	prev    store.MirrorState
	files   map[store.FileKey]store.FileState
	mu      sync.Mutex
	results map[store.FileKey]fileResult
	// verdicts, one per location of the sweep set, replace results and
	// files once the mirror is done (settle).
	verdicts []locVerdict
	sums     MirrorSweepSums
	failAt   time.Time
}

type fileResult struct {
	kind     checks.Kind
	verified bool // the file is known right: hashed now, or hashed before and unchanged since
}

func (sw *sweepRun) sweepMirror(ctx context.Context, ms *mirrorSweep) {
	start := time.Now()
	defer func() { ms.sums.Seconds = time.Since(start).Seconds() }()
	var err error
	if ms.files, err = sw.d.Store.MirrorFileStates(ctx, ms.m.ID, sw.set.releaseIDs); err != nil {
		ms.sums.interrupted, ms.sums.Note = true, "could not read file states: "+err.Error()
		return
	}
	if sw.stop.Err() != nil || sw.global.Acquire(ctx, 1) != nil {
		ms.sums.interrupted = true
		return
	}
	reach := checks.Reachable(ctx, sw.d.Client, ms.m.BaseURL)
	sw.global.Release(1)
	if ctx.Err() != nil {
		ms.sums.interrupted = true
		return
	}
	sw.record(ctx, ms, "", 0, "HEAD", reach)
	ms.sums.Reachable = !reach.Kind.Failed()
	if !ms.sums.Reachable {
		ms.sums.FirstFailure = fmt.Sprintf("%s %s: %s", reach.Kind, ms.m.BaseURL, reach.Detail)
		ms.sums.Failures[reach.Kind]++
		return
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

// judge applies the guard and hysteresis and marks every mirror.
func (sw *sweepRun) judge(ctx context.Context, all []*mirrorSweep) (string, string) {
	// A mirror sentry could not finish checking (its own trouble) is
	// neither counted nor marked.
	var mirrors []*mirrorSweep
	for _, ms := range all {
		if !ms.sums.interrupted {
			mirrors = append(mirrors, ms)
		}
	}
	failed := 0
	for _, ms := range mirrors {
		ms.sums.SweepFailed = sweepFailed(&ms.sums)
		if ms.sums.SweepFailed {
			failed++
		}
	}
	guard := ""
	anyBad := failed > 0
	for _, ms := range mirrors {
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
	if guard != "" {
		return store.OutcomeGuarded, "mass-failure guard held back marking: " + guard
	}
	return store.OutcomeCompleted, ""
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
	upd := &store.StateUpdate{State: st.State, FailStreak: st.FailStreak, OkStreak: st.OkStreak, At: sw.d.now(), RunID: sw.run.ID}
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
	ms.mu.Lock()
	defer ms.mu.Unlock()
	var marks []store.LocationMark
	for i, l := range sw.set.locations {
		v := ms.verdicts[i]
		switch {
		case v.missing:
			marks = append(marks, store.LocationMark{LocationID: l.id, Mark: store.MarkMissing})
		case v.judged && v.good && up:
			marks = append(marks, store.LocationMark{LocationID: l.id, Mark: store.MarkGood})
		}
	}
	return marks
}

// locVerdict is what a mirror's checks say of one location.
type locVerdict struct{ good, missing, judged bool }

// settle reduces a finished mirror to what marking needs, one verdict per
// location, and drops its per-file results and file states.
func (sw *sweepRun) settle(ms *mirrorSweep) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.verdicts = make([]locVerdict, len(sw.set.locations))
	for i, l := range sw.set.locations {
		v := locVerdict{good: true, judged: true}
		for _, lk := range l.files {
			r, ok := ms.results[lk.key]
			switch {
			case !ok || r.kind == checks.KindInternal:
				v.judged = false
			case r.kind.Definitive():
				v.missing = true
			case !r.verified:
				v.good = false
			}
		}
		ms.verdicts[i] = v
	}
	ms.results, ms.files = nil, nil
}

func (sw *sweepRun) sweepReason(ms *mirrorSweep) string {
	s := &ms.sums
	kind := "sweep"
	if sw.deep {
		kind = "deep sweep"
	}
	if !s.Reachable {
		return fmt.Sprintf("%s: unreachable: %s", kind, s.FirstFailure)
	}
	r := fmt.Sprintf("%s: %d/%d files present", kind, s.OK+s.Unchanged, s.Checked)
	if s.Hashed > 0 {
		r += fmt.Sprintf(" (%d hashed)", s.Hashed)
	}
	if s.Failed > 0 {
		r += fmt.Sprintf(", %d failed (%s); first: %s", s.Failed, kindCounts(s.Failures), s.FirstFailure)
	}
	return strings.TrimSpace(r)
}
