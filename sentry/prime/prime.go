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
	"fmt"
	"log/slog"
	"slices"
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
	"github.com/mirrorsentry/sentry/sentry/record"
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
	ReleaseID       int64                `json:"release_id"`
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
}

func (j *Job) resolver() *release.Resolver {
	return &release.Resolver{Config: j.Config, Store: j.Store, Client: j.Client}
}

// Plan resolves the release from the master (its manifest recorded, its
// locations mapped) and gives the prime a row per active mirror (of those
// asked for). A prime that would check nothing the redirector serves — no
// active mirror, no bouncer product of the release, no location, none
// mapping onto the manifest — fails here, before any mirror is contacted
// (release.ErrNothingToDo).
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
	p, err := j.resolver().Resolve(ctx, req.Release)
	if err != nil {
		return engine.Plan{}, err
	}
	if err := p.CheckLocations(); err != nil {
		return engine.Plan{}, err
	}
	log := j.Logger.With("release", req.Release, "run", run.ID)
	log.Info("prime started", "files", len(p.Files), "locations", len(p.Locations), "mirrors", len(mirrors),
		"unresolved_locations", len(p.Unresolved))
	for _, u := range p.Unresolved {
		log.Warn("location not marked on any mirror", "location", u.LocationID, "path", u.Path, "reason", u.Reason)
	}
	// Withdrawn locations come off every mirror, and so do those of files
	// the manifest changed (respun) until this prime verifies them.
	w := store.Withdrawals{Withdrawn: p.Withdrawn(), Respun: p.LocationsOf(p.Release.Respun), Resolved: p.LocationIDs()}
	if n, err := j.Store.Withdraw(ctx, w); err != nil {
		return engine.Plan{}, err
	} else if n > 0 {
		log.Warn("withdrawn and respun locations taken off their mirrors", "rows", n, "respun_files", len(p.Release.Respun))
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
	if err := t.prepareSampling(ctx, false); err != nil { // Resolve attached the digests
		return engine.Plan{}, err
	}
	return engine.Plan{
		Params: params{Request: req, ReleaseID: p.Release.ID, Files: len(p.Files), Locations: len(p.Locations),
			Unresolved: mirrorjob.NonNil(p.Unresolved), MissingProducts: mirrorjob.NonNil(p.MissingProducts)},
		ReleaseID: p.Release.ID, Mirrors: mirrorjob.IDs(mirrors), Task: t,
	}, nil
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
	p, err := j.resolver().Known(ctx, store.Release{ID: pp.ReleaseID, Name: pp.Release}, false)
	if err != nil {
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
	if err := t.prepareSampling(ctx, true); err != nil {
		return nil, err
	}
	return t, nil
}

// newTask is a prime of the release of p on mirrors, as this process
// works it.
func (j *Job) newTask(ctx context.Context, run engine.Run, p *release.Plan, force bool, mirrors []store.Mirror) (*task, error) {
	exceptions, err := j.Store.LangExceptions(ctx, p.LocationIDs())
	if err != nil {
		return nil, err
	}
	t := &task{job: j, log: j.Logger.With("release", p.Release.Name, "run", run.ID), run: run, plan: p, force: force,
		exceptions: exceptions, master: release.NewMaster(j.Client, p.ManifestURL), mirrors: mirrorjob.ByID(mirrors),
		unusable: map[int]string{}}
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
	job        *Job
	log        *slog.Logger
	run        engine.Run
	plan       *release.Plan
	force      bool
	exceptions map[[2]int][]string
	master     *release.Master
	mirrors    map[int]store.Mirror // active when the task was prepared
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
	if why := t.unusable[m.ID]; why != "" {
		return engine.Result{Files: rowResult{Sums: t.misconfigured(ctx, row, mp, why)}}, true
	}
	if why := t.inMaintenance(m.ID); why != "" {
		return engine.Result{Files: rowResult{Sums: t.maintenance(ctx, row, mp, why)}}, true
	}
	started := time.Now()
	if !t.prime(ctx, row, mp) {
		return engine.Result{}, false
	}
	mp.sums.Seconds = time.Since(started).Seconds()
	held := t.markDone(ctx, row, mp)
	return engine.Result{Files: rowResult{Sums: mp.sums, Held: held}}, true
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
		return t.job.Store.MarkMirror(ctx, store.MirrorMarks{MirrorID: mp.m.ID, Rating: mp.m.Rating,
			LogDate: t.run.StartedAt, Reason: fmt.Sprintf("prime %s: %s", t.plan.Release.Name, why), Fence: row.Fence()})
	})
	if err != nil {
		s.Note += "; its sentry_log row could not be written: " + err.Error()
	}
	return *s
}

// record turns one outcome into a check for the recorder and the summary.
func (t *task) record(ctx context.Context, row *engine.Row, mp *mirrorPrime, o primer.Outcome) {
	res := o.Result
	if res.Kind == checks.KindInternal && ctx.Err() != nil {
		return // cancelled, not a fact about the mirror
	}
	c := record.Check(res, t.plan.Release.ID, o.Path, o.Method, o.CheckedAt, t.job.Config.Vantage)
	if !mirrorjob.Record(ctx, row, t.job.Observer, t.run, mp.m, c, res) {
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
		mp.sums.BytesVerified += observe.VerifiedBytes(res)
		if res.Sampled > 0 {
			mp.sums.FilesSampled++
		}
		return
	}
	mp.sums.FilesFailed++
	mp.sums.Failures[res.Kind]++
	mirrorjob.KeepEarliest(&mp.failAt, &mp.sums.FirstFailure, o.CheckedAt, o.Path, res)
}

// markDone settles a primed mirror's state and, unless it failed
// wholesale (left to the judgement), writes its marks under the row's
// fence. It returns why marks other than good were held back, if they
// were.
func (t *task) markDone(ctx context.Context, row *engine.Row, mp *mirrorPrime) string {
	s := &mp.sums
	s.FilesOK += s.Resumed
	switch {
	case decide.FailedWholesale(true, s.FilesOK, s.Failures):
		s.State = "down"
		return ""
	case s.FilesFailed > 0:
		s.State = "partial"
	default:
		s.State = "ok"
	}
	marks := t.locationMarks(mp)
	held := ""
	if decide.AnyBad(marks) {
		held = t.master.Down(ctx)
	}
	t.mark(ctx, row.Fence(), mp, marks, false, held)
	return held
}

// locationMarks decides the release's locations on mp's mirror from this
// run's file results.
func (t *task) locationMarks(mp *mirrorPrime) []decide.LocationMark {
	mp.mu.Lock()
	defer mp.mu.Unlock()
	marks := make([]decide.LocationMark, 0, len(t.plan.Locations))
	for _, l := range t.plan.Locations {
		excused := t.exceptions[[2]int{l.ID, mp.m.ID}]
		files := make([]decide.File, len(l.Files))
		for i, f := range l.Files {
			k, ok := mp.results[f.Path]
			files[i] = decide.File{Checked: ok, Kind: k, Verified: ok && k == checks.KindOK,
				Excused: f.Lang != "" && slices.Contains(excused, f.Lang)}
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
		s.Note = "not marked down: " + held
	}
	m := store.MirrorMarks{MirrorID: mp.m.ID, Rating: mp.m.Rating, LogDate: t.run.StartedAt, Up: s.State != "down",
		Reason: reason, Locations: marks, Down: down, Fence: fence}
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
	switch s.State {
	case "ok":
		return fmt.Sprintf("prime %s: %d/%d files verified%s", rel, s.FilesOK, total, sampledNote(s))
	case "down":
		return fmt.Sprintf("prime %s: mirror down, no file verified (%s); first: %s", rel, checks.CountsText(s.Failures), s.FirstFailure)
	default:
		return fmt.Sprintf("prime %s: %d/%d files verified%s, %d failed (%s); first: %s",
			rel, s.FilesOK, total, sampledNote(s), s.FilesFailed, checks.CountsText(s.Failures), s.FirstFailure)
	}
}

// Judge is a prime's last step, once every mirror is primed: the
// mass-failure guard over the mirrors that failed wholesale — when the
// master is unreachable, or more than guard.max_down_fraction of the
// mirrors checked failed at once, sentry suspects its own network and
// marks none of them down — their marks, and the run's outcome.
func (t *task) Judge(ctx context.Context, j *engine.Judgement) (engine.Ending, error) {
	var all, down []*mirrorPrime
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
		if mp.sums.State == "down" {
			down = append(down, mp)
		}
		all = append(all, mp)
	}
	checked := 0
	for _, mp := range all {
		if mp.sums.State != "interrupted" && mp.sums.State != "misconfigured" && mp.sums.State != StateMaintenance {
			checked++
		}
	}
	guard := ""
	if len(down) > 0 {
		guard = decide.Guard(decide.GuardFacts{MasterDown: t.master.Down(ctx), Failed: len(down), Checked: checked,
			MaxDownFraction: mirrorjob.MaxDownFraction(t.job.Config, t.restricted), Failing: "failed wholesale"})
	}
	if guard != "" {
		t.log.Warn("mass-failure guard: not marking mirrors down", "mirrors", len(down), "why", guard)
		held = guard
	}
	for _, mp := range down {
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
	return end, nil
}
