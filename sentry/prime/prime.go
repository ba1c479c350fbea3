// Package prime is the prime job: it makes every active mirror pull a
// release's files (package primer does one mirror, by its mode), verifies
// them, and marks the bouncer tables, as the engine's rows (one per mirror)
// are worked by every sentry on the database.
//
// A mirror is marked as soon as its row is done, fenced by the row's
// lease: a location is good when every file is verified, missing when one
// is missing or wrong, in trouble otherwise (package decide). A mirror that
// failed wholesale (nothing verified, only transient failures) is left to
// the run's judgement, which applies the mass-failure guard over all such
// mirrors at once before marking them down.
//
// prime.go is the job (Plan, Prepare), one mirror's prime (Work) and the
// judgement (Judge); sampled.go sets a sampled prime up (verify.mode
// sampled); maintenance.go leaves a mirror in maintenance alone; report.go is
// the run's report (Summarize). What it does as the sweep does — reading
// a run back, recording checks, announcing state changes, the guard's
// share, reading rows into a report — is package mirrorjob's.
package prime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/mirrorjob"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Kind is the prime's run kind.
const Kind = store.RunPrime

// Key is the engine key of a release's prime: one prime of a release runs
// at a time.
func Key(rel string) string { return "prime " + rel }

// Request is what a prime is asked for.
type Request struct {
	Release string `json:"release"`
	// Force re-downloads files that an earlier run of the release already
	// verified on a mirror (by default a re-run resumes).
	Force bool `json:"force"`
	// Mirrors, when set, restricts the prime to the active mirrors of
	// these names (`sentry prime --mirror NAME`).
	Mirrors []string `json:"mirrors,omitempty"`
}

// Job is the prime job. Its fields are what it works with; one Job serves
// every prime of the process.
type Job struct {
	Config   *config.Config
	Store    *store.Store
	Client   *checks.Client
	Logger   *slog.Logger
	Observer observe.Observer
	// Global caps this process's requests in flight across all mirrors
	// (checks.concurrency).
	Global *semaphore.Weighted
	// Sampler picks the blocks of sampled checks (verify.mode sampled);
	// nil: one with a secret random seed (tests set a fixed one).
	Sampler *checks.Sampler
}

// params are what every worker of a prime needs to do its part, and what
// its report says of the release.
type params struct {
	Request
	ReleaseID int64 `json:"release_id"`
	// ManifestSHA256 is the manifest the prime was planned with: the
	// master's copy of its files is judged for it.
	ManifestSHA256  string               `json:"manifest_sha256"`
	Files           int                  `json:"files"`
	Locations       int                  `json:"locations"`
	Unresolved      []release.Unresolved `json:"unresolved_locations"`
	MissingProducts []string             `json:"missing_products"`
}

// rowResult is one mirror's prime as its work row keeps it.
type rowResult struct {
	Sums MirrorSums `json:"sums"`
	// Held is why marks other than good were held back (the master was
	// unreachable when the mirror was marked).
	Held string `json:"held,omitempty"`
	// Gone: the mirror was deactivated or deleted since the run began.
	Gone bool `json:"gone,omitempty"`
	// Master, when set, is why nothing was marked: the master's copy of
	// the release was found wrong (MasterWrong), or could not be read to
	// the end (package release, mastercopy.go). The run's judgement ends
	// it so.
	Master      string `json:"master,omitempty"`
	MasterWrong bool   `json:"master_wrong,omitempty"`
	// Families are what the reachability checks of a dual-stack mirror
	// found over each address family (family → "" reached, or what
	// failed), from Vantage (families.go).
	Families map[string]string `json:"families,omitempty"`
	Vantage  string            `json:"vantage,omitempty"`
	// FamilyDown: the mirror is broken over a family under
	// state.family_policy down; the judgement decides it with every
	// mirror's families (judgeFamilies), and writes Deferred, its marks
	// as its files say, unless it takes it down.
	FamilyDown bool                  `json:"family_down,omitempty"`
	Deferred   []decide.LocationMark `json:"deferred,omitempty"`
}

func (j *Job) resolver() *release.Resolver {
	return &release.Resolver{Config: j.Config, Store: j.Store, Client: j.Client, Logger: j.Logger,
		Retry: func(ctx context.Context, what string, write func() error) error {
			return engine.Retry(ctx, j.Logger, what, engine.MarkRetryFor, write)
		}}
}

// Plan resolves the release from the master (its manifest recorded, its
// locations mapped, the master's copy of its files being read: mirrors
// are primed meanwhile, and marked once it is found good) and gives the
// prime a row per active mirror (of those asked for), the highest rated
// first (CapacityFirst). A prime that would check nothing the redirector
// serves — no active mirror, no bouncer product of the release, no
// location, none mapping onto the manifest — fails here, before any
// mirror is contacted (release.ErrNothingToDo).
func (j *Job) Plan(ctx context.Context, run engine.Run) (engine.Plan, error) {
	var req Request
	if err := mirrorjob.ReadRequest(run, &req); err != nil {
		return engine.Plan{}, err
	}
	if err := release.ValidateName(req.Release); err != nil {
		return engine.Plan{}, err
	}
	mirrors, err := mirrorjob.ActiveMirrors(ctx, j.Store, req.Mirrors)
	if err != nil {
		return engine.Plan{}, err
	}
	if err := j.resolver().CheckProducts(ctx, req.Release); err != nil {
		return engine.Plan{}, err
	}
	log := j.Logger.With("release", req.Release, "run", run.ID)
	p, err := j.resolver().Resolve(ctx, req.Release, func(ctx context.Context, p *release.Plan) error {
		return withdraw(ctx, j.Store, p, log)
	})
	if err != nil {
		return engine.Plan{}, err
	}
	planned := false
	defer func() {
		if !planned {
			p.Master.Stop()
		}
	}()
	if err := p.CheckLocations(); err != nil {
		return engine.Plan{}, err
	}
	log.Info("prime started", "files", len(p.Files), "locations", len(p.Locations), "mirrors", len(mirrors),
		"unresolved_locations", len(p.Unresolved))
	for _, u := range p.Unresolved {
		log.Warn("location not marked on any mirror", "location", u.LocationID, "path", u.Path, "reason", u.Reason)
	}
	if err := mirrorjob.NoteSwitchedOff(ctx, j.Store, log); err != nil {
		return engine.Plan{}, err
	}
	for _, n := range p.MissingProducts {
		log.Warn("no bouncer product of this name", "product", n)
	}
	t, err := j.newTask(ctx, run, p, req.Force, mirrors)
	if err != nil {
		return engine.Plan{}, err
	}
	t.restricted = len(req.Mirrors) > 0
	if err := t.prepareSampling(ctx); err != nil {
		return engine.Plan{}, err
	}
	planned = true
	return engine.Plan{
		Params: params{Request: req, ReleaseID: p.Release.ID, ManifestSHA256: p.Release.ManifestSHA256, Files: len(p.Files),
			Locations: len(p.Locations), Unresolved: mirrorjob.NonNil(p.Unresolved), MissingProducts: mirrorjob.NonNil(p.MissingProducts)},
		ReleaseID: p.Release.ID, Mirrors: mirrorjob.IDs(CapacityFirst(mirrors)), Task: t,
	}, nil
}

// withdraw takes withdrawn locations off every mirror, and those of files
// the manifest changed (respun) until this prime verifies them: once the
// master's copy is found good, before any mark of the prime.
func withdraw(ctx context.Context, st *store.Store, p *release.Plan, log *slog.Logger) error {
	w := store.Withdrawals{Withdrawn: p.Withdrawn(), Respun: p.LocationsOf(p.Release.Respun), Resolved: p.LocationIDs()}
	n, err := st.Withdraw(ctx, w)
	if err != nil {
		return err
	}
	if n > 0 {
		log.Warn("withdrawn and respun locations taken off their mirrors", "rows", n, "respun_files", len(p.Release.Respun))
	}
	return nil
}

// Interrupted is the reason of a prime stopped before its end: the mirrors
// done are marked, and a re-run resumes.
func (j *Job) Interrupted(cause error, done, total int) string {
	return fmt.Sprintf("interrupted (%v) with %d of %d mirrors done; a re-run resumes", cause, done, total)
}

// Prepare builds what this process needs to prime mirrors for a run: the
// release's plan from the manifest recorded when the run was planned.
func (j *Job) Prepare(ctx context.Context, run engine.Run) (engine.Task, error) {
	var pp params
	if err := mirrorjob.ReadParams(run, &pp); err != nil {
		return nil, err
	}
	p, err := j.resolver().Known(ctx, store.Release{ID: pp.ReleaseID, Name: pp.Release, ManifestSHA256: pp.ManifestSHA256}, false)
	if err != nil {
		return nil, err
	}
	// The master's copy is read by the sentry that planned the prime:
	// follow it.
	if p.Master, err = j.resolver().WatchMaster(ctx, p, run.ID, j.Config.Cluster.Lease.D()); err != nil {
		return nil, err
	}
	mirrors, err := j.Store.ActiveMirrors(ctx)
	if err != nil {
		return nil, err
	}
	t, err := j.newTask(ctx, run, p, pp.Force, mirrors)
	if err != nil {
		return nil, err
	}
	t.restricted = len(pp.Mirrors) > 0
	if err := t.prepareSampling(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// newTask is a prime of the release of p on mirrors, as this process
// works it.
func (j *Job) newTask(ctx context.Context, run engine.Run, p *release.Plan, force bool, mirrors []store.Mirror) (*task, error) {
	t := &task{job: j, log: j.Logger.With("release", p.Release.Name, "run", run.ID), run: run, plan: p, force: force,
		master: release.NewMaster(j.Client, p.ManifestURL), mirrors: mirrorjob.ByID(mirrors),
		unusable: map[int]string{}}
	var err error
	for _, m := range mirrors {
		if why := primeMirror(m, 0).Unusable(j.Config.Trigger.Secret != ""); why != "" {
			t.unusable[m.ID] = why
		}
	}
	if t.windows, err = j.maintenance(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// task is one prime as this process works it.
type task struct {
	job     *Job
	log     *slog.Logger
	run     engine.Run
	plan    *release.Plan
	force   bool
	master  *release.Master
	mirrors map[int]store.Mirror // active when the task was prepared
	// unusable says why a mirror's settings do not let it be primed.
	unusable map[int]string
	// windows are the mirrors' maintenance windows (maintenance.go).
	windows map[int]window
	// restricted: the run covers the mirrors it was asked for only.
	restricted bool
	// primings is how mirrors are primed, and ranges how their servers
	// answer ranges, as earlier primes learned them (sampled primes only).
	primings map[int]store.Priming
	ranges   map[int]store.RangeWay
}

// mirrorPrime is one mirror's prime in progress.
type mirrorPrime struct {
	m       store.Mirror
	mu      sync.Mutex
	sums    MirrorSums
	results map[string]checks.Kind // path → this run's outcome (ok when resumed)
	failAt  time.Time
	// found is what its reachability checks found over each family (a
	// dual-stack mirror: families.go), nil when it was checked over one.
	found map[string]string
	// familyDown: the judgement decides it (rowResult.FamilyDown), and
	// deferred are its marks as its files say.
	familyDown bool
	deferred   []decide.LocationMark
}

func newMirrorPrime(m store.Mirror) *mirrorPrime {
	return &mirrorPrime{m: m, results: map[string]checks.Kind{},
		sums: MirrorSums{ID: m.ID, Name: m.Name, Mode: m.Mode, Failures: map[checks.Kind]int{}}}
}

// Work primes one mirror and marks it, unless it failed wholesale: the
// guard over those is the run's judgement.
func (t *task) Work(ctx context.Context, row *engine.Row) (engine.Result, bool) {
	m, ok := t.mirrors[row.MirrorID]
	if !ok {
		return engine.Result{Files: rowResult{Gone: true}}, true
	}
	defer t.job.Client.Forget(m.BaseURL)
	ctx = checks.Paced(ctx, t.job.Config.MirrorRate(m.MaxRate))
	mp := newMirrorPrime(m)
	if err, known := t.plan.Master.Verdict(); known && err != nil {
		return t.masterFailed(mp, err), true
	}
	if why := t.unusable[m.ID]; why != "" {
		if err := t.plan.Master.Wait(ctx); err != nil {
			return t.masterFailed(mp, err), ctx.Err() == nil
		}
		return engine.Result{Files: rowResult{Sums: t.misconfigured(ctx, row, mp, why)}}, true
	}
	if why := t.inMaintenance(m.ID); why != "" {
		if err := t.plan.Master.Wait(ctx); err != nil {
			return t.masterFailed(mp, err), ctx.Err() == nil
		}
		return engine.Result{Files: rowResult{Sums: t.maintenance(ctx, row, mp, why)}}, true
	}
	started := time.Now()
	if !t.prime(ctx, row, mp) {
		if err, known := t.plan.Master.Verdict(); known && err != nil && ctx.Err() == nil {
			return t.masterFailed(mp, err), true
		}
		return engine.Result{}, false
	}
	mp.sums.Seconds = time.Since(started).Seconds()
	// No mark before the master's copy is found good.
	if err := t.waitMaster(ctx, mp); err != nil {
		return t.masterFailed(mp, err), ctx.Err() == nil
	}
	res := t.markDone(ctx, row, mp)
	if mp.sums.Marked {
		t.job.promoter().AfterMarks(ctx, t.plan.Release.Name, "prime", t.run.ID)
	}
	return engine.Result{Files: res}, true
}

// waitMaster waits, before a primed mirror is marked, for the verdict on
// the master's copy of the release, which may still be being read. Its
// error is the verdict's, or ctx's.
func (t *task) waitMaster(ctx context.Context, mp *mirrorPrime) error {
	if err, known := t.plan.Master.Verdict(); known {
		return err
	}
	t.log.Info("mirror primed; marking it once the master's copy is read to the end", "mirror", mp.m.Name)
	if err := t.plan.Master.Wait(ctx); err != nil {
		return err
	}
	return ctx.Err()
}

// masterFailed is the row of a mirror left unmarked because the master's
// copy of the release was found wrong or not read to the end.
func (t *task) masterFailed(mp *mirrorPrime, err error) engine.Result {
	mp.sums.State = "interrupted"
	mp.sums.Note = "not marked: " + err.Error()
	return engine.Result{Files: rowResult{Sums: mp.sums, Master: err.Error(), MasterWrong: errors.Is(err, release.ErrMasterCopy)}}
}

// prime primes the mirror's files (those not verified by an earlier run,
// unless forced). It returns false when interrupted.
func (t *task) prime(ctx context.Context, row *engine.Row, mp *mirrorPrime) bool {
	log := t.log.With("mirror", mp.m.Name)
	files := t.plan.Files
	if !t.force {
		verified, err := t.job.Store.VerifiedFiles(ctx, t.plan.Release.ID, mp.m.ID)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			// Resuming only saves downloads: through a database outage,
			// verify every file rather than leave the mirror unchecked.
			log.Warn("could not read earlier results; verifying every file", "err", err)
			verified = nil
		}
		if len(verified) > 0 {
			files = make([]primer.File, 0, len(t.plan.Files))
			for _, f := range t.plan.Files {
				if verified[f.Path] {
					mp.results[f.Path] = checks.KindOK
					mp.sums.Resumed++
					continue
				}
				files = append(files, f)
			}
		}
	}
	cfg := t.job.Config
	pm := primeMirror(mp.m, cfg.MirrorConcurrency(mp.m.MaxConcurrency))
	pc := primer.Config{
		Client: t.job.Client, Release: t.plan.Release.Name, ReleaseDir: t.plan.Dir, Global: t.job.Global,
		Deadline: cfg.Prime.Deadline.D(), PollInterval: cfg.Prime.PollInterval.D(),
		PollMax: cfg.Prime.PollMax.D(), TriggerSecret: []byte(cfg.Trigger.Secret), Logger: log,
	}
	files = t.sample(ctx, row, mp, &pc, &pm, files)
	if len(files) > 0 {
		// A dual-stack mirror: over which families (families.go).
		fams, ok := t.familiesOf(ctx, row, mp)
		if !ok {
			return false
		}
		pm.Families = fams
		if len(fams) > 1 {
			files = t.hashBeside(ctx, mp, files)
		}
	}
	err := primer.Prime(ctx, pc, pm, files, func(o primer.Outcome) { t.record(ctx, row, mp, o) })
	return err == nil && ctx.Err() == nil
}

// primeMirror is m as package primer primes it.
func primeMirror(m store.Mirror, conc int) primer.Mirror {
	return primer.Mirror{ID: m.ID, Name: m.Name, BaseURL: m.BaseURL, Mode: primer.Mode(m.Mode),
		TriggerURL: m.TriggerURL, Concurrency: conc, Purge: primer.Purge{Method: m.PurgeMethod, URL: m.PurgeURL}}
}

// misconfigured settles a mirror whose settings do not let it be primed,
// without contacting it: its state says so, its sentry_log row gives the
// reason, and none of its locations is marked (nothing was learnt of its
// files).
func (t *task) misconfigured(ctx context.Context, row *engine.Row, mp *mirrorPrime, why string) MirrorSums {
	t.log.Warn("mirror not primed: its settings are unusable", "mirror", mp.m.Name, "why", why)
	return t.uncontacted(ctx, row, mp, "misconfigured", why)
}

// uncontacted settles a mirror the prime does not contact: its summary
// state and note, its sentry_log row saying why, no location marked.
func (t *task) uncontacted(ctx context.Context, row *engine.Row, mp *mirrorPrime, state, why string) MirrorSums {
	s := &mp.sums
	s.State, s.Note = state, why
	err := engine.Retry(ctx, t.log.With("mirror_id", mp.m.ID), "marking", engine.MarkRetryFor, func() error {
		// Not checked: a mirror sentry never verified anything on has
		// its inherited rows taken off (decide.Vouch).
		return t.job.Store.MarkMirror(ctx, store.MirrorMarks{MirrorID: mp.m.ID, Rating: mp.m.Rating,
			LogDate: t.run.StartedAt, Reason: fmt.Sprintf("prime %s: %s", t.plan.Release.Name, why), Fence: row.Fence(),
			Covered: t.plan.LocationIDs()})
	})
	if err != nil {
		s.Note += "; its sentry_log row could not be written: " + err.Error()
	}
	return *s
}

// record turns one outcome into checks for the recorder (one per family
// the file was checked over: recordOutcome) and the file's result for
// the summary.
func (t *task) record(ctx context.Context, row *engine.Row, mp *mirrorPrime, o primer.Outcome) {
	if o.Result.Kind == checks.KindInternal && ctx.Err() != nil {
		return // cancelled, not a fact about the mirror
	}
	res, over, ok := t.recordOutcome(ctx, row, mp, o)
	if !ok {
		return
	}
	if o.Path == "" {
		if res.Kind.Failed() {
			t.log.Warn("trigger failed", "mirror", mp.m.Name, "kind", res.Kind, "detail", res.Detail)
		}
		return
	}
	mp.mu.Lock()
	defer mp.mu.Unlock()
	mp.results[o.Path] = res.Kind
	if res.Kind == checks.KindOK {
		mp.sums.FilesOK++
		mp.sums.BytesVerified += observe.VerifiedBytes(o.Result)
		if o.Result.Sampled > 0 {
			mp.sums.FilesSampled++
		}
		return
	}
	mp.sums.FilesFailed++
	mp.sums.Failures[res.Kind]++
	if over != "" {
		if mp.sums.FailedOver == nil {
			mp.sums.FailedOver = map[string]int{}
		}
		mp.sums.FailedOver[string(over)]++
	}
	mirrorjob.KeepEarliest(&mp.failAt, &mp.sums.FirstFailure, o.CheckedAt, o.Path, res)
}

// markDone settles a primed mirror's state and, unless it failed
// wholesale or is broken over a family under state.family_policy down
// (both left to the judgement), writes its marks under the row's fence.
// It returns the mirror's row: Held says why marks other than good were
// held back, if they were.
func (t *task) markDone(ctx context.Context, row *engine.Row, mp *mirrorPrime) rowResult {
	s := &mp.sums
	s.FilesOK += s.Resumed
	res := rowResult{Families: mp.found}
	if mp.found != nil {
		res.Vantage = t.job.Config.Vantage
	}
	if decide.FailedWholesale(true, s.FilesOK, s.Failures) {
		s.State = "down"
		res.Sums = *s
		return res
	}
	s.State = filesState(s)
	marks := t.locationMarks(mp)
	if decide.FamilyCountsAgainst(t.job.Config.State.FamilyPolicy, s.BrokenFamilies) {
		// Down as an unreachable mirror, unless this vantage point's
		// trouble over the family is its own: the judgement sees every
		// mirror (judgeFamilies).
		res.Sums, res.FamilyDown, res.Deferred = *s, true, marks
		return res
	}
	held := ""
	if decide.AnyBad(marks) {
		held = t.master.Down(ctx)
	}
	t.mark(ctx, row.Fence(), mp, marks, false, held)
	res.Sums, res.Held = *s, held
	return res
}

// filesState is a primed mirror's summary state as its files say: ok, or
// partial when some failed.
func filesState(s *MirrorSums) string {
	if s.FilesFailed > 0 {
		return "partial"
	}
	return "ok"
}

// locationMarks decides the release's locations on mp's mirror from this
// run's file results: every language's file counts, whatever the mirror's
// language exceptions say (decide.Location).
func (t *task) locationMarks(mp *mirrorPrime) []decide.LocationMark {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	marks := make([]decide.LocationMark, 0, len(t.plan.Locations))
	for _, l := range t.plan.Locations {
		files := make([]decide.File, len(l.Files))
		for i, f := range l.Files {
			k, ok := mp.results[f.Path]
			files[i] = decide.File{Checked: ok, Kind: k, Verified: ok && k == checks.KindOK}
		}
		if m := decide.Location(files); m != decide.Unjudged {
			marks = append(marks, decide.LocationMark{LocationID: l.ID, Mark: m})
		}
	}
	return marks
}

// mark writes one mirror's marks under fence. down judges the whole mirror
// down. held, when set, is why marks other than good are held back (the
// guard); good marks are still written.
func (t *task) mark(ctx context.Context, fence store.Fence, mp *mirrorPrime, marks []decide.LocationMark, down bool, held string) {
	s := &mp.sums
	reason := t.reason(s)
	if held != "" {
		marks, down = decide.KeepGood(marks), false
		reason += "; not marked down: " + held
		s.Note = joinNote(s.Note, "not marked down: "+held)
	}
	m := store.MirrorMarks{MirrorID: mp.m.ID, Rating: mp.m.Rating, LogDate: t.run.StartedAt, Up: s.State != "down",
		Reason: reason, Locations: marks, Down: down, Fence: fence, Verified: s.FilesOK > 0}
	if held == "" {
		// Rows an earlier checker left on a mirror sentry never verified
		// anything on are decided by this marking (decide.Vouch).
		m.Covered = t.plan.LocationIDs()
	}
	var changed *store.StateUpdate
	err := engine.Retry(ctx, t.log.With("mirror_id", mp.m.ID), "marking", engine.MarkRetryFor, func() error {
		if !down {
			return t.job.Store.MarkMirror(ctx, m)
		}
		// Judged down: the mirror's state says so too, in the same
		// transaction (every view reads the state).
		h := mirrorjob.Hysteresis(t.job.Config)
		wrote, ok, err := t.job.Store.JudgeMirror(ctx, mp.m.ID, t.run.ID, t.run.StartedAt, fence, func(prev store.MirrorState) store.MirrorMarks {
			st := h.PrimeDown(decide.State{State: prev.State, FailStreak: prev.FailStreak, OkStreak: prev.OkStreak})
			m.State = &store.StateUpdate{State: st.Next.State, FailStreak: st.Next.FailStreak, OkStreak: st.Next.OkStreak,
				At: time.Now(), Reason: st.Reason(reason), From: st.From, FailingFrom: []string{t.job.Config.Vantage},
				CheckedFrom: []string{t.job.Config.Vantage}}
			return m
		})
		if ok && wrote.State.From != "" {
			changed = wrote.State
		}
		return err
	})
	if err != nil {
		t.log.Error("marking failed", "mirror", mp.m.Name, "err", err)
		s.Note = "marking failed: " + err.Error()
		return
	}
	if changed != nil {
		mirrorjob.StateChanged(t.log, t.job.Observer, t.run, mp.m, changed, changed.Reason)
	}
	s.Marked = true
	s.LocationsGood, s.LocationsBad = 0, 0
	for _, l := range marks {
		if l.Mark == decide.Good {
			s.LocationsGood++
		} else {
			s.LocationsBad++
		}
	}
}

// reason is the sentry_log line of a mirror.
func (t *task) reason(s *MirrorSums) string {
	rel := t.plan.Release.Name
	total := s.FilesOK + s.FilesFailed
	broken := ""
	if len(s.BrokenFamilies) > 0 {
		broken = "; " + s.Note
	}
	switch {
	case s.State == "down" && len(s.BrokenFamilies) > 0 && s.FilesOK > 0:
		return fmt.Sprintf("prime %s: mirror down, broken over an address family: %d/%d files verified over another%s",
			rel, s.FilesOK, total, broken)
	case s.State == "ok":
		return fmt.Sprintf("prime %s: %d/%d files verified%s%s", rel, s.FilesOK, total, sampledNote(s), broken)
	case s.State == "down":
		return fmt.Sprintf("prime %s: mirror down, no file verified (%s); first: %s%s", rel, checks.CountsText(s.Failures), s.FirstFailure, broken)
	default:
		return fmt.Sprintf("prime %s: %d/%d files verified%s, %d failed (%s)%s; first: %s%s",
			rel, s.FilesOK, total, sampledNote(s), s.FilesFailed, checks.CountsText(s.Failures), failedOverNote(s), s.FirstFailure, broken)
	}
}

// Judge is a prime's last step, once every mirror is primed: the
// mass-failure guard over the mirrors that failed wholesale — when the
// master is unreachable, or more than guard.max_down_fraction of the
// mirrors checked failed at once, sentry suspects its own network and
// marks none of them down — their marks, and the run's outcome.
func (t *task) Judge(ctx context.Context, j *engine.Judgement) (engine.Ending, error) {
	if end, failed, err := t.judgeMaster(ctx, j); failed || err != nil {
		return end, err
	}
	var all, down, familyDown []*mirrorPrime
	verdicts := map[int]decide.FamilyVerdicts{}
	held := ""
	for _, r := range j.Rows {
		var res rowResult
		done, err := r.DecodeFiles(&res)
		if err != nil {
			return engine.Ending{}, err
		}
		m, ok := t.mirrors[r.MirrorID]
		if res.Gone || !ok {
			continue
		}
		mp := newMirrorPrime(m)
		if !done {
			mp.sums.State = "interrupted"
		} else {
			mp.sums = res.Sums
			if mp.sums.Failures == nil {
				mp.sums.Failures = map[checks.Kind]int{}
			}
		}
		if res.Held != "" && held == "" {
			held = res.Held
		}
		if done && len(res.Families) > 1 {
			verdicts[m.ID] = familyVerdicts(res)
		}
		switch {
		case done && res.FamilyDown:
			mp.familyDown, mp.deferred = true, res.Deferred
			familyDown = append(familyDown, mp)
		case mp.sums.State == "down":
			down = append(down, mp)
		}
		all = append(all, mp)
	}
	// Those broken over a family under state.family_policy down: down as
	// unreachable mirrors, or marked as their files say.
	familyDown, spared := t.judgeFamilies(verdicts, familyDown)
	down = append(down, familyDown...)
	for _, mp := range spared {
		h := ""
		if decide.AnyBad(mp.deferred) {
			h = t.master.Down(ctx)
		}
		if h != "" && held == "" {
			held = h
		}
		t.mark(ctx, j.Fence(), mp, mp.deferred, false, h)
	}
	checked := 0
	for _, mp := range all {
		if mp.sums.State != "interrupted" && mp.sums.State != "misconfigured" && mp.sums.State != StateMaintenance {
			checked++
		}
	}
	guard := ""
	if len(down) > 0 {
		failing := "failed wholesale"
		if len(familyDown) > 0 {
			failing = "failed wholesale or over an address family (state.family_policy down)"
		}
		guard = decide.Guard(decide.GuardFacts{MasterDown: t.master.Down(ctx), Failed: len(down), Checked: checked,
			MaxDownFraction: mirrorjob.MaxDownFraction(t.job.Config, t.restricted), Failing: failing})
	}
	if guard != "" {
		t.log.Warn("mass-failure guard: not marking mirrors down", "mirrors", len(down), "why", guard)
		held = guard
	}
	for _, mp := range down {
		if guard != "" && mp.familyDown {
			// Not down, the guard holding: its files' good marks.
			mp.sums.State = filesState(&mp.sums)
			t.mark(ctx, j.Fence(), mp, mp.deferred, false, guard)
			continue
		}
		marks := make([]decide.LocationMark, 0, len(t.plan.Locations))
		for _, l := range t.plan.Locations {
			marks = append(marks, decide.LocationMark{LocationID: l.ID, Mark: decide.Trouble})
		}
		t.mark(ctx, j.Fence(), mp, marks, true, guard)
	}
	if err := ctx.Err(); err != nil {
		return engine.Ending{}, err
	}
	end := engine.Ending{Outcome: store.OutcomeCompleted, Files: map[int]any{}}
	for _, mp := range all {
		end.Files[mp.m.ID] = rowResult{Sums: mp.sums}
	}
	if held != "" {
		end.Outcome, end.Reason = store.OutcomeGuarded, mirrorjob.GuardReason(held)
	}
	if guard != "" {
		end.After = mirrorjob.GuardHeld(t.job.Observer, t.run, len(down), guard)
	}
	end.After = t.promoteAfter(end.After)
	return end, nil
}

// judgeMaster ends a prime whose master copy was found wrong (failed) or
// not read to the end (interrupted: a re-run reads the rest) with nothing
// marked; failed is false when the copy was found good.
func (t *task) judgeMaster(ctx context.Context, j *engine.Judgement) (engine.Ending, bool, error) {
	err := t.plan.Master.Wait(ctx)
	if ctx.Err() != nil {
		return engine.Ending{}, false, ctx.Err()
	}
	if err == nil {
		return engine.Ending{}, false, nil
	}
	end := engine.Ending{Outcome: store.OutcomeFailed, Reason: err.Error(), Files: map[int]any{}}
	if errors.Is(err, release.ErrMasterUnread) {
		end.Outcome = store.OutcomeInterrupted
		end.Reason += "; nothing was marked; a re-run resumes"
	}
	for _, r := range j.Rows {
		var res rowResult
		if _, derr := r.DecodeFiles(&res); derr != nil {
			return engine.Ending{}, false, derr
		}
		m, ok := t.mirrors[r.MirrorID]
		if res.Gone || !ok {
			continue
		}
		if res.Master == "" { // done before the verdict was known here
			mp := newMirrorPrime(m)
			if res.Sums.ID != 0 {
				mp.sums = res.Sums
			}
			res = t.masterFailed(mp, err).Files.(rowResult)
		}
		end.Files[m.ID] = res
	}
	t.log.Error("prime ended with nothing marked: the master's copy", "err", err)
	return end, true, nil
}
