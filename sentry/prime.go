package sentry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Deps are what a run works with. cmd wires them from the configuration;
// tests wire them to throwaway databases and local mirrors.
type Deps struct {
	Config *Config
	Store  *store.Store
	Client *checks.Client
	Logger *slog.Logger
	// Progress, when set, receives a live progress line (a terminal).
	Progress io.Writer
	// Now is the clock of sweeps' bookkeeping (check times, deep-sweep
	// rotation); nil means time.Now. Tests simulate days with it.
	Now func() time.Time
	// Observer, when set, is told of every check, state change, guard
	// activation and finished run (metrics, notifications).
	Observer Observer
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// NewClient builds the checks client the configuration describes.
func NewClient(cfg *Config, log *slog.Logger) (*checks.Client, error) {
	retries := cfg.Checks.Retries
	if retries == 0 {
		retries = checks.NoRetries
	}
	return checks.NewClient(checks.ClientOptions{
		UserAgent:       cfg.UserAgent(),
		ConnectTimeout:  cfg.Checks.ConnectTimeout.D(),
		HeaderTimeout:   cfg.Checks.HeaderTimeout.D(),
		BodyIdleTimeout: cfg.Checks.BodyIdleTimeout.D(),
		Retries:         retries,
		RetryWaitMin:    cfg.Checks.RetryWaitMin.D(),
		RetryWaitMax:    cfg.Checks.RetryWaitMax.D(),
		Logger:          log,
		SourceAddress:   cfg.Checks.SourceAddress,
	})
}

// PrimeOptions are the arguments of `sentry prime`.
type PrimeOptions struct {
	Release string
	// Force re-downloads files that an earlier run of this release already
	// verified on a mirror (by default a re-run resumes).
	Force bool
	// Run, when set, is a run record made beforehand (the release hook
	// answers with its id before the prime starts). A prime that cannot
	// be done then records its error there, as a failed run.
	Run *store.Run
	// Worker, when set, is the daemon's worker, which does the prime with
	// the other instances; Prime then only records the run and waits for
	// it. nil: the prime gets a worker of its own (a command).
	Worker *Worker
	// Stop, with Worker, ends the wait for the prime (the daemon stops;
	// other instances finish it). nil: ctx alone.
	Stop context.Context
}

// PrimeReport is what `sentry prime` found; --format json prints it.
type PrimeReport struct {
	RunID      int64     `json:"run_id"`
	Release    string    `json:"release"`
	Outcome    string    `json:"outcome"` // completed, guarded, interrupted, failed
	Reason     string    `json:"reason,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	// Files is the number of files in the manifest; Locations the number
	// of bouncer locations mapped onto them.
	Files           int               `json:"files"`
	Locations       int               `json:"locations"`
	Unresolved      []Unresolved      `json:"unresolved_locations"`
	MissingProducts []string          `json:"missing_products"`
	Mirrors         []MirrorPrimeSums `json:"mirrors"`
}

// MirrorPrimeSums is one mirror's line of the prime summary.
type MirrorPrimeSums struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
	Mode string `json:"mode"`
	// State is "ok" (every file verified), "partial" (some files failed),
	// "down" (nothing verified, only transient failures: the mirror is in
	// trouble) or "interrupted".
	State string `json:"state"`
	// FilesOK counts files verified in this run or, when resumed, in an
	// earlier run of the release (Resumed of them).
	FilesOK       int                 `json:"files_ok"`
	FilesFailed   int                 `json:"files_failed"`
	Resumed       int                 `json:"files_resumed"`
	BytesVerified int64               `json:"bytes_verified"`
	Failures      map[checks.Kind]int `json:"failures"`
	FirstFailure  string              `json:"first_failure,omitempty"`
	Seconds       float64             `json:"seconds"`
	// Marked says whether the bouncer tables were written for the mirror;
	// LocationsGood and LocationsBad count the locations marked good and
	// not good.
	Marked        bool   `json:"marked"`
	LocationsGood int    `json:"locations_good"`
	LocationsBad  int    `json:"locations_bad"`
	Note          string `json:"note,omitempty"`
}

// Prime primes and verifies release on every active mirror and marks the
// bouncer tables (DESIGN.md sections 1-3). It returns an error only when
// the run could not be done (bad release name, schema not migrated,
// manifest unusable, database unreachable); failing mirrors are data, in
// the report. The report's Outcome is "guarded" when the mass-failure guard
// held back marking mirrors down, and "interrupted" when ctx ended first
// (mirrors completed before that are marked; the others are untouched, and
// a re-run resumes).
func Prime(ctx context.Context, d *Deps, opts PrimeOptions) (rep *PrimeReport, err error) {
	if opts.Run != nil {
		defer func() {
			if err != nil && !errors.Is(err, errStopped) {
				finishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				defer cancel()
				_ = d.Store.FinishRun(finishCtx, opts.Run.ID, store.OutcomeFailed, err.Error())
			}
		}()
	}
	if err := ValidateReleaseName(opts.Release); err != nil {
		return nil, err
	}
	if err := d.Store.RequireSchema(ctx); err != nil {
		return nil, err
	}
	closeStaleRuns(ctx, d)
	log := d.Logger.With("release", opts.Release)
	p, err := resolve(ctx, d, opts.Release)
	if err != nil {
		return nil, err
	}
	mirrors, err := d.Store.ActiveMirrors(ctx)
	if err != nil {
		return nil, err
	}
	w, own, finish, err := runWorker(ctx, d, opts.Worker, ctx)
	if err != nil {
		return nil, err
	}
	defer finish()
	ids, names := mirrorIDs(mirrors)
	exceptions, err := p.langExceptions(ctx, d)
	if err != nil {
		return nil, err
	}
	run, claims, err := d.Store.CreateRun(ctx, store.NewRun{Kind: store.RunPrime, ReleaseID: p.release.ID,
		Vantage: d.Config.Vantage, Instance: w.id, Mirrors: ids, Lease: w.lease, Claim: w.free(),
		Params: primeParams{ReleaseID: p.release.ID, Release: p.release.Name, Force: opts.Force}}, opts.Run)
	if err != nil {
		return nil, err
	}
	log = log.With("run", run.ID)
	log.Info("prime started", "files", len(p.files), "locations", len(p.locations), "mirrors", len(mirrors),
		"unresolved_locations", len(p.unresolved))
	for _, u := range p.unresolved {
		log.Warn("location not marked", "location", u.LocationID, "path", u.Path, "reason", u.Reason)
	}
	for _, n := range p.missingProducts {
		log.Warn("no bouncer product of this name", "product", n)
	}
	report := &PrimeReport{
		RunID: run.ID, Release: opts.Release, StartedAt: run.StartedAt,
		Files: len(p.files), Locations: len(p.locations),
		Unresolved: nonNil(p.unresolved), MissingProducts: nonNil(p.missingProducts),
	}
	if own {
		w.progress = newProgress(d.Progress, "prime "+opts.Release, len(mirrors)*len(p.files))
		defer w.progress.stop()
		w.start(run.ID)
	}
	w.adopt(run.ID, &runWork{prime: newPrimeRun(w, run, p, opts.Force, exceptions, mirrors)}, claims)
	stop := opts.Stop
	if stop == nil {
		stop = ctx
	}
	st, err := w.waitRun(ctx, stop, run.ID)
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err != nil {
		if !own {
			return nil, errStopped // the other instances go on with it
		}
		// This command's own run: checks in flight end with ctx; mirrors
		// done are marked, the others untouched, and a re-run resumes.
		finish()
		if st, err = d.Store.RunStatus(endCtx, run.ID); err != nil {
			return nil, err
		}
		reason := fmt.Sprintf("interrupted (%v) with %d of %d mirrors done; a re-run resumes",
			context.Cause(ctx), st.Total-st.Open, st.Total)
		if err := endRunRetrying(endCtx, d, run.ID, store.OutcomeInterrupted, reason); err != nil {
			return nil, err
		}
		st.Outcome, st.Reason = store.OutcomeInterrupted, reason
		d.observer().RunFinished(RunEvent{RunID: run.ID, Kind: store.RunPrime, Outcome: st.Outcome,
			Started: run.StartedAt, Finished: time.Now()})
	}
	report.Outcome, report.Reason = st.Outcome, st.Reason
	err = d.Store.WorkRows(endCtx, run.ID, func(r store.WorkRow) error {
		var res primeRowResult
		if r.Result != nil {
			if err := json.Unmarshal(r.Result, &res); err != nil {
				return fmt.Errorf("read the prime of mirror %d: %w", r.MirrorID, err)
			}
		}
		if res.Gone {
			return nil
		}
		if r.Result == nil {
			res.Sums = MirrorPrimeSums{ID: r.MirrorID, Name: names[r.MirrorID], State: "interrupted",
				Failures: map[checks.Kind]int{}}
		}
		report.Mirrors = append(report.Mirrors, res.Sums)
		return nil
	})
	if err != nil {
		return nil, err
	}
	report.FinishedAt = time.Now()
	log.Info("prime finished", "outcome", report.Outcome, "reason", report.Reason)
	return report, nil
}

// mirrorIDs lists the ids of mirrors, in order (a run's work rows), and
// names them by id (its report).
func mirrorIDs(mirrors []store.Mirror) ([]int, map[int]string) {
	ids := make([]int, len(mirrors))
	names := make(map[int]string, len(mirrors))
	for i, m := range mirrors {
		ids[i], names[m.ID] = m.ID, m.Name
	}
	return ids, names
}

// langExceptions reads the language exceptions of the plan's locations.
func (p *plan) langExceptions(ctx context.Context, d *Deps) (map[[2]int][]string, error) {
	locIDs := make([]int, len(p.locations))
	for i, l := range p.locations {
		locIDs[i] = l.ID
	}
	return d.Store.LangExceptions(ctx, locIDs)
}

// primeParams are what every worker of a prime needs to do its part.
type primeParams struct {
	ReleaseID int64  `json:"release_id"`
	Release   string `json:"release"`
	Force     bool   `json:"force"`
}

// primeRowResult is one mirror's prime as its work row keeps it.
type primeRowResult struct {
	Sums MirrorPrimeSums `json:"sums"`
	// Held is why marks other than good were held back (the master was
	// unreachable when the mirror was judged).
	Held string `json:"held,omitempty"`
	Gone bool   `json:"gone,omitempty"`
}

// preparePrime builds what a worker needs to prime mirrors for a run: the
// release's plan from the manifest recorded when the run began.
func preparePrime(ctx context.Context, w *Worker, run store.Run, raw []byte) (*primeRun, error) {
	var pp primeParams
	if err := json.Unmarshal(raw, &pp); err != nil {
		return nil, fmt.Errorf("read the parameters of run %d: %w", run.ID, err)
	}
	d := w.d
	files, err := d.Store.ReleaseFiles(ctx, pp.ReleaseID)
	if err != nil {
		return nil, err
	}
	p := &plan{release: store.Release{ID: pp.ReleaseID, Name: pp.Release},
		manifestURL: d.Config.ManifestURL(pp.Release), dir: d.Config.ReleaseDir(pp.Release)}
	byPath := make(map[string]bool, len(files))
	p.files = make([]primer.File, len(files))
	for i, f := range files {
		byPath[f.Path] = true
		p.files[i] = primer.File{Path: f.Path, Size: f.Size, Algo: f.Algo, Hash: f.Hash}
	}
	if err := p.mapLocations(ctx, d, func(path string) bool { return byPath[path] }, pp.Release, false); err != nil {
		return nil, err
	}
	exceptions, err := p.langExceptions(ctx, d)
	if err != nil {
		return nil, err
	}
	mirrors, err := d.Store.ActiveMirrors(ctx)
	if err != nil {
		return nil, err
	}
	return newPrimeRun(w, run, p, pp.Force, exceptions, mirrors), nil
}

// newPrimeRun is a worker's means to prime the mirrors of a run.
func newPrimeRun(w *Worker, run store.Run, p *plan, force bool, exceptions map[[2]int][]string, mirrors []store.Mirror) *primeRun {
	pr := &primeRun{
		d: w.d, log: w.log.With("release", p.release.Name, "run", run.ID), plan: p, run: run, force: force,
		exceptions: exceptions, rec: w.rec, global: w.global, master: newMasterCheck(w.d, p.manifestURL),
		mirrors: make(map[int]store.Mirror, len(mirrors)), progress: w.progress,
	}
	if pr.progress == nil {
		pr.progress = newProgress(nil, "", 0)
	}
	for _, m := range mirrors {
		pr.mirrors[m.ID] = m
	}
	return pr
}

// row primes one mirror and marks it, unless it failed wholesale: the
// guard over such mirrors is the run's last step (judgePrime). nil: not
// finished (stopping); give it back.
func (pr *primeRun) row(ctx context.Context, c store.Claim) *store.WorkDone {
	m, ok := pr.mirrors[c.MirrorID]
	if !ok {
		return &store.WorkDone{Result: primeRowResult{Gone: true}}
	}
	mr := pr.newMirrorRun(m)
	pr.primeMirror(ctx, mr)
	defer pr.d.Client.Forget(m.BaseURL)
	if mr.sums.State == "interrupted" {
		return nil
	}
	return &store.WorkDone{Result: primeRowResult{Sums: mr.sums, Held: mr.held}}
}

func (pr *primeRun) newMirrorRun(m store.Mirror) *mirrorRun {
	return &mirrorRun{m: m, results: make(map[string]checks.Kind, len(pr.plan.files)),
		sums: MirrorPrimeSums{ID: m.ID, Name: m.Name, Mode: m.Mode, Failures: map[checks.Kind]int{}}}
}

// judgePrime is a prime's last step, done by one instance once every
// mirror is primed: the guard over the mirrors that failed wholesale, their
// marks, and the run's outcome.
func judgePrime(ctx context.Context, w *Worker, j store.JudgeClaim) error {
	d := w.d
	run := store.Run{ID: j.ID, Kind: j.Kind, StartedAt: j.StartedAt}
	pr, err := preparePrime(ctx, w, run, j.Params)
	if err != nil {
		return err
	}
	var runs []*mirrorRun
	err = d.Store.WorkRows(ctx, j.ID, func(r store.WorkRow) error {
		var res primeRowResult
		if r.Result != nil {
			if err := json.Unmarshal(r.Result, &res); err != nil {
				return fmt.Errorf("read the prime of mirror %d: %w", r.MirrorID, err)
			}
		}
		m, ok := pr.mirrors[r.MirrorID]
		if res.Gone || !ok {
			return nil
		}
		mr := pr.newMirrorRun(m)
		if r.Result == nil {
			mr.sums.State = "interrupted"
		} else {
			mr.sums = res.Sums
			if mr.sums.Failures == nil {
				mr.sums.Failures = map[checks.Kind]int{}
			}
		}
		if res.Held != "" && pr.guardWhy == "" {
			pr.guardWhy = res.Held
		}
		if mr.sums.State == "down" {
			pr.deferred = append(pr.deferred, mr)
		}
		runs = append(runs, mr)
		return nil
	})
	if err != nil {
		return err
	}
	pr.finishDeferred(ctx, runs)
	sums := make([]MirrorPrimeSums, len(runs))
	results := make(map[int]any, len(runs))
	for i, mr := range runs {
		sums[i] = mr.sums
		results[mr.m.ID] = primeRowResult{Sums: mr.sums}
	}
	outcome, reason := pr.outcome(ctx, sums)
	if err := d.Store.SetWorkResults(ctx, j.ID, results); err != nil {
		return err
	}
	if err := endRunRetrying(ctx, d, j.ID, outcome, reason); err != nil {
		return err
	}
	d.observer().RunFinished(RunEvent{RunID: j.ID, Kind: store.RunPrime, Outcome: outcome,
		Started: j.StartedAt, Finished: time.Now()})
	pr.log.Info("prime judged", "outcome", outcome, "reason", reason)
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// primeRun is one prime in progress.
type primeRun struct {
	d          *Deps
	log        *slog.Logger
	plan       *plan
	run        store.Run
	force      bool
	exceptions map[[2]int][]string
	rec        *Recorder
	global     *semaphore.Weighted
	master     *masterCheck
	progress   *progress
	mirrors    map[int]store.Mirror // active when the worker prepared the run

	mu       sync.Mutex
	deferred []*mirrorRun // judged down: marked after the guard's decision
	guardWhy string       // why the guard held back marking, once it did
}

// mirrorRun is one mirror's prime.
type mirrorRun struct {
	m       store.Mirror
	sums    MirrorPrimeSums
	mu      sync.Mutex
	results map[string]checks.Kind // path → kind of this run's outcome (or ok when resumed)
	started time.Time
	failAt  time.Time
	held    string // why marks other than good were held back
}

func (pr *primeRun) primeMirror(ctx context.Context, mr *mirrorRun) {
	mr.started = time.Now()
	defer func() { mr.sums.Seconds = time.Since(mr.started).Seconds() }()
	log := pr.log.With("mirror", mr.m.Name)
	files := pr.plan.files
	if !pr.force {
		verified, err := pr.d.Store.VerifiedFiles(ctx, pr.plan.release.ID, mr.m.ID)
		if err != nil {
			if ctx.Err() != nil {
				mr.sums.State, mr.sums.Note = "interrupted", "could not read earlier results: "+err.Error()
				return
			}
			// Resuming only saves downloads: through a database outage,
			// verify every file rather than leave the mirror unchecked.
			log.Warn("could not read earlier results; verifying every file", "err", err)
			verified = nil
		}
		if len(verified) > 0 {
			files = make([]primer.File, 0, len(pr.plan.files))
			for _, f := range pr.plan.files {
				if verified[f.Path] {
					mr.results[f.Path] = checks.KindOK
					mr.sums.Resumed++
					continue
				}
				files = append(files, f)
			}
			pr.progress.add(len(pr.plan.files)-len(files), 0)
		}
	}
	conc := mr.m.MaxConcurrency
	if conc <= 0 {
		conc = pr.d.Config.Checks.PerMirrorConcurrency
	}
	pm := primer.Mirror{ID: mr.m.ID, Name: mr.m.Name, BaseURL: mr.m.BaseURL, Mode: primer.Mode(mr.m.Mode),
		TriggerURL: mr.m.TriggerURL, Concurrency: conc}
	cfg := primer.Config{
		Client: pr.d.Client, Release: pr.plan.release.Name, ReleaseDir: pr.plan.dir, Global: pr.global,
		Deadline: pr.d.Config.Prime.Deadline.D(), PollInterval: pr.d.Config.Prime.PollInterval.D(),
		PollMax: pr.d.Config.Prime.PollMax.D(), TriggerSecret: []byte(pr.d.Config.Trigger.Secret), Logger: log,
	}
	err := primer.Prime(ctx, cfg, pm, files, func(o primer.Outcome) { pr.record(ctx, mr, o) })
	if err != nil || ctx.Err() != nil {
		mr.sums.State = "interrupted"
		return
	}
	pr.judge(ctx, mr)
}

// record turns one outcome into a check for the recorder and the summary.
func (pr *primeRun) record(ctx context.Context, mr *mirrorRun, o primer.Outcome) {
	res := o.Result
	if res.Kind == checks.KindInternal && ctx.Err() != nil {
		return // cancelled, not a fact about the mirror
	}
	c := store.Check{
		RunID: pr.run.ID, MirrorID: mr.m.ID, ReleaseID: pr.plan.release.ID, Path: o.Path,
		CheckedAt: o.CheckedAt, Vantage: pr.d.Config.Vantage, Method: o.Method, Result: string(res.Kind),
		Status: res.Status, Bytes: res.Bytes, Hashed: res.Hashed, Duration: res.Duration, Attempts: res.Attempts,
		CacheStatus: res.CacheStatus, Detail: res.Detail, ETag: res.ETag, LastModified: res.LastModified,
		Size: res.Bytes,
	}
	if err := pr.rec.Add(ctx, c); err != nil {
		return
	}
	pr.d.observer().CheckDone(CheckEvent{RunKind: store.RunPrime, Mirror: mr.m.Name, Result: res.Kind,
		BytesVerified: verifiedBytes(res)})
	if o.Path == "" {
		if res.Kind.Failed() {
			pr.log.Warn("trigger failed", "mirror", mr.m.Name, "kind", res.Kind, "detail", res.Detail)
		}
		return
	}
	mr.mu.Lock()
	defer mr.mu.Unlock()
	mr.results[o.Path] = res.Kind
	var bytes int64
	if res.Kind == checks.KindOK {
		mr.sums.FilesOK++
		if res.Hashed {
			bytes = res.Bytes
			mr.sums.BytesVerified += bytes
		}
	} else {
		mr.sums.FilesFailed++
		mr.sums.Failures[res.Kind]++
		if mr.failAt.IsZero() || o.CheckedAt.Before(mr.failAt) {
			mr.failAt = o.CheckedAt
			mr.sums.FirstFailure = fmt.Sprintf("%s %s: %s", res.Kind, o.Path, res.Detail)
		}
	}
	pr.progress.add(1, bytes)
}

// judge decides a finished mirror's marks and writes them, or defers them
// to the guard when the mirror failed wholesale.
func (pr *primeRun) judge(ctx context.Context, mr *mirrorRun) {
	mr.sums.FilesOK += mr.sums.Resumed
	down := mr.sums.FilesOK == 0 && mr.sums.FilesFailed > 0
	for k := range mr.sums.Failures {
		if !k.Transient() {
			down = false // the mirror answers; its files are missing or wrong
		}
	}
	switch {
	case down:
		mr.sums.State = "down"
		pr.mu.Lock()
		pr.deferred = append(pr.deferred, mr)
		pr.mu.Unlock()
		return
	case mr.sums.FilesFailed > 0:
		mr.sums.State = "partial"
	default:
		mr.sums.State = "ok"
	}
	marks := pr.locationMarks(mr)
	holdDown := ""
	if hasBad(marks) {
		if up, why := pr.master.up(ctx); !up {
			holdDown = why
			mr.held = why
			pr.mu.Lock()
			pr.guardWhy = why
			pr.mu.Unlock()
		}
	}
	pr.mark(ctx, mr, marks, false, holdDown)
}

func hasBad(marks []store.LocationMark) bool {
	for _, l := range marks {
		if l.Mark != store.MarkGood {
			return true
		}
	}
	return false
}

// locationMarks maps this run's file results onto the release's locations
// for mr's mirror: good when every file is verified, missing when any is
// missing or wrong, trouble otherwise. Locations with a file sentry could
// not judge (its own fault, or not checked) are left unmarked.
func (pr *primeRun) locationMarks(mr *mirrorRun) []store.LocationMark {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	marks := make([]store.LocationMark, 0, len(pr.plan.locations))
	for _, l := range pr.plan.locations {
		excused := pr.exceptions[[2]int{l.ID, mr.m.ID}]
		mark, judged := store.MarkGood, true
		for _, f := range l.Files {
			if f.Lang != "" && contains(excused, f.Lang) {
				continue
			}
			k, ok := mr.results[f.Path]
			switch {
			case !ok || k == checks.KindInternal:
				judged = false
			case k.Definitive():
				mark = store.MarkMissing
			case k.Failed() && mark == store.MarkGood:
				mark = store.MarkTrouble
			}
		}
		if judged {
			marks = append(marks, store.LocationMark{LocationID: l.ID, Mark: mark})
		}
	}
	return marks
}

// mark writes one mirror's marks. down judges the whole mirror down.
// holdDown, when set, is why marks other than good are held back (the
// guard); good marks are still written.
func (pr *primeRun) mark(ctx context.Context, mr *mirrorRun, marks []store.LocationMark, down bool, holdDown string) {
	reason := pr.reason(mr)
	if holdDown != "" {
		kept := marks[:0]
		for _, l := range marks {
			if l.Mark == store.MarkGood {
				kept = append(kept, l)
			}
		}
		marks, down = kept, false
		reason += "; not marked down: " + holdDown
		mr.sums.Note = "not marked down: " + holdDown
	}
	err := markRetrying(ctx, pr.d, pr.log, store.MirrorMarks{
		MirrorID: mr.m.ID, Rating: mr.m.Rating, LogDate: pr.run.StartedAt, Up: mr.sums.State != "down",
		Reason: reason, Locations: marks, Down: down,
	})
	if err != nil {
		pr.log.Error("marking failed", "mirror", mr.m.Name, "err", err)
		mr.sums.Note = "marking failed: " + err.Error()
		return
	}
	mr.sums.Marked = true
	for _, l := range marks {
		if l.Mark == store.MarkGood {
			mr.sums.LocationsGood++
		} else {
			mr.sums.LocationsBad++
		}
	}
}

// reason is the sentry_log line of a mirror.
func (pr *primeRun) reason(mr *mirrorRun) string {
	s := mr.sums
	total := s.FilesOK + s.FilesFailed
	switch s.State {
	case "ok":
		return fmt.Sprintf("prime %s: %d/%d files verified", pr.plan.release.Name, s.FilesOK, total)
	case "down":
		return fmt.Sprintf("prime %s: mirror down, no file verified (%s); first: %s",
			pr.plan.release.Name, kindCounts(s.Failures), s.FirstFailure)
	default:
		return fmt.Sprintf("prime %s: %d/%d files verified, %d failed (%s); first: %s",
			pr.plan.release.Name, s.FilesOK, total, s.FilesFailed, kindCounts(s.Failures), s.FirstFailure)
	}
}

func kindCounts(m map[checks.Kind]int) string {
	parts := make([]string, 0, len(m))
	for k, n := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// finishDeferred applies the mass-failure guard to the mirrors that failed
// wholesale: when the master is unreachable, or more than
// guard.max_down_fraction of the mirrors checked in this run are down, sentry
// suspects its own network and marks none of them down.
func (pr *primeRun) finishDeferred(ctx context.Context, runs []*mirrorRun) {
	if ctx.Err() != nil {
		return
	}
	checked := 0
	for _, mr := range runs {
		if mr.sums.State != "interrupted" {
			checked++
		}
	}
	if len(pr.deferred) == 0 {
		return
	}
	why := ""
	if up, reason := pr.master.up(ctx); !up {
		why = reason
	} else if frac := float64(len(pr.deferred)) / float64(checked); frac > pr.d.Config.Guard.MaxDownFraction {
		why = fmt.Sprintf("%d of %d mirrors failed wholesale (more than guard.max_down_fraction %.2f): suspecting sentry's own network",
			len(pr.deferred), checked, pr.d.Config.Guard.MaxDownFraction)
	}
	if why != "" {
		pr.mu.Lock()
		pr.guardWhy = why
		pr.mu.Unlock()
		pr.log.Warn("mass-failure guard: not marking mirrors down", "mirrors", len(pr.deferred), "why", why)
		pr.d.observer().GuardHeld(GuardEvent{At: time.Now(), RunID: pr.run.ID, RunKind: store.RunPrime,
			Mirrors: len(pr.deferred), Reason: why})
	}
	for _, mr := range pr.deferred {
		marks := make([]store.LocationMark, 0, len(pr.plan.locations))
		for _, l := range pr.plan.locations {
			marks = append(marks, store.LocationMark{LocationID: l.ID, Mark: store.MarkTrouble})
		}
		pr.mark(ctx, mr, marks, true, why)
	}
}

// outcome is the run's recorded outcome and reason.
func (pr *primeRun) outcome(ctx context.Context, mirrors []MirrorPrimeSums) (string, string) {
	if ctx.Err() != nil {
		done := 0
		for _, m := range mirrors {
			if m.State != "interrupted" {
				done++
			}
		}
		return store.OutcomeInterrupted, fmt.Sprintf("interrupted (%v) with %d of %d mirrors done; a re-run resumes",
			context.Cause(ctx), done, len(mirrors))
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.guardWhy != "" {
		return store.OutcomeGuarded, "mass-failure guard held back marking: " + pr.guardWhy
	}
	return store.OutcomeCompleted, ""
}

// masterCheck answers whether the master is reachable, asking it at most
// every 30 seconds.
type masterCheck struct {
	d   *Deps
	url string

	mu   sync.Mutex
	at   time.Time
	ok   bool
	why  string
	busy chan struct{}
}

func newMasterCheck(d *Deps, url string) *masterCheck {
	return &masterCheck{d: d, url: url, busy: make(chan struct{}, 1)}
}

func (mc *masterCheck) up(ctx context.Context) (bool, string) {
	select {
	case mc.busy <- struct{}{}:
		defer func() { <-mc.busy }()
	case <-ctx.Done():
		return false, "interrupted"
	}
	mc.mu.Lock()
	if !mc.at.IsZero() && time.Since(mc.at) < 30*time.Second {
		defer mc.mu.Unlock()
		return mc.ok, mc.why
	}
	mc.mu.Unlock()
	res := checks.Head(ctx, mc.d.Client, checks.Target{URL: mc.url, Size: -1})
	mc.mu.Lock()
	defer mc.mu.Unlock()
	mc.at, mc.ok, mc.why = time.Now(), res.Kind == checks.KindOK, ""
	if !mc.ok {
		mc.why = fmt.Sprintf("the master is unreachable (%s: %s)", res.Kind, res.Detail)
	}
	return mc.ok, mc.why
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
