package engine

// Tests of the run engine on a real PostgreSQL database, with a fake job
// whose rows and judgement each test scripts.
//
// A lease running out, or an instance falling silent, is simulated by
// moving lease_until, judge_until or last_seen into the past with SQL,
// except in the tests of self-fencing and of retried judging, which wait
// (on conditions, with generous deadlines) for short leases and backoffs
// to pass. No test measures time.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// bundle is what an engine test works with.
type bundle struct {
	t       *testing.T
	ctx     context.Context
	st      *store.Store
	mirrors []int // ids in mirror_mirrors, sorted
	ended   *endings
}

// setup opens a migrated database with n mirrors.
func setup(t *testing.T, n int) *bundle {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, pgtest.NewDB(t), 16)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	b := &bundle{t: t, ctx: ctx, st: st, ended: &endings{}}
	for i := range n {
		b.mirrors = append(b.mirrors, factory.Mirror(ctx, t, st.Pool(), &factory.MirrorOpts{Name: fmt.Sprintf("m%d", i+1)}).ID)
	}
	slices.Sort(b.mirrors)
	return b
}

// errSweepBusy is the fake sweeps' Kind.Busy.
var errSweepBusy = errors.New("another sweep is still running")

// fakeKinds registers job for the kinds of prime and sweep, with the
// properties sentry registers them with (sentry.NewEngine), and for the
// extra kinds given.
func fakeKinds(job Job, extra map[string]Kind) map[string]Kind {
	kinds := map[string]Kind{
		store.RunPrime:     {Job: job, Priority: 10},
		store.RunSweep:     {Job: job, Yield: true, Group: "sweep", Busy: errSweepBusy},
		store.RunDeepSweep: {Job: job, Yield: true, Group: "sweep", Busy: errSweepBusy},
	}
	maps.Copy(kinds, extra)
	return kinds
}

// engine is an engine at vantage point vantage running job for every
// kind, with leases of lease (a minute when 0: they never run out by
// themselves while a test runs).
func (b *bundle) engine(vantage string, job *fakeJob, lease time.Duration, slots int) *Engine {
	b.t.Helper()
	return b.engineOf(vantage, fakeKinds(job, nil), lease, slots)
}

// engineOf is engine, with the kinds given.
func (b *bundle) engineOf(vantage string, kinds map[string]Kind, lease time.Duration, slots int) *Engine {
	b.t.Helper()
	if lease == 0 {
		lease = time.Minute
	}
	e, err := New(b.st, Options{
		Jobs:    kinds,
		Vantage: vantage, Lease: lease, Poll: min(lease/4, 100*time.Millisecond), Slots: slots,
		JudgeFor: 10 * time.Minute, Observer: b.ended, Logger: testLogger(b.t),
	})
	if err != nil {
		b.t.Fatal(err)
	}
	return e
}

// daemon starts a daemon's worker on e; the test's end stops it.
func (b *bundle) daemon(e *Engine) *Worker {
	b.t.Helper()
	stop, cancel := context.WithCancel(b.ctx)
	w, err := e.NewWorker(b.ctx, RoleDaemon, stop, b.ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	w.Start()
	b.t.Cleanup(func() {
		cancel()
		w.Shutdown(0)
	})
	return w
}

// worker registers a worker on e whose loops are not started: the test
// drives its claims and heartbeats by hand.
func (b *bundle) worker(e *Engine, role string) *Worker {
	b.t.Helper()
	w, err := e.NewWorker(b.ctx, role, b.ctx, b.ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { _ = w.rec.Close(context.Background()) })
	return w
}

func (b *bundle) exec(sql string, args ...any) {
	b.t.Helper()
	if _, err := b.st.Pool().Exec(b.ctx, sql, args...); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bundle) scalar(sql string, dest any, args ...any) {
	b.t.Helper()
	if err := b.st.Pool().QueryRow(b.ctx, sql, args...).Scan(dest); err != nil {
		b.t.Fatal(err)
	}
}

// until waits for cond (a condition other goroutines bring about), failing
// after two minutes: generous for a loaded two-core machine.
func (b *bundle) until(what string, cond func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// outcome is a run's recorded outcome.
func (b *bundle) outcome(runID int64) string {
	b.t.Helper()
	var o string
	b.scalar(`SELECT outcome FROM sentry_runs WHERE id = $1`, &o, runID)
	return o
}

// start records a run of kind over the given mirrors for worker w, as
// Drive does before and after planning, claiming claim rows.
func (b *bundle) start(w *Worker, kind string, reach bool, claim int, mirrors ...int) (Run, []*Row) {
	b.t.Helper()
	run, joined, err := w.e.begin(b.ctx, Request{Kind: kind, Params: map[string]any{}}, w.id)
	if err != nil || joined {
		b.t.Fatalf("begin: %v (joined %v)", err, joined)
	}
	slots := w.e.opts.Slots
	w.e.opts.Slots = claim
	run, rows, err := w.e.plan(b.ctx, w, run, Plan{Params: map[string]any{"mirrors": mirrors}, Mirrors: mirrors, Reach: reach})
	w.e.opts.Slots = slots
	if err != nil {
		b.t.Fatal(err)
	}
	return run, rows
}

// claim claims up to n rows for w (of run runID only, when not 0).
func (b *bundle) claim(w *Worker, runID int64, n int) []*Row {
	b.t.Helper()
	w.only.Store(runID)
	slots := w.e.opts.Slots
	w.e.opts.Slots = len(w.held.rows) + n
	rows, err := w.e.claimOnce(b.ctx, w)
	w.e.opts.Slots = slots
	if err != nil {
		b.t.Fatal(err)
	}
	return rows
}

func keysOf(rows []*Row) []WorkKey {
	out := make([]WorkKey, len(rows))
	for i, r := range rows {
		out[i] = WorkKey{r.Run.ID, r.MirrorID}
	}
	slices.SortFunc(out, func(a, b WorkKey) int {
		if a.RunID != b.RunID {
			return int(a.RunID - b.RunID)
		}
		return a.MirrorID - b.MirrorID
	})
	return out
}

func keys(runID int64, mirrors ...int) []WorkKey {
	out := make([]WorkKey, len(mirrors))
	for i, m := range mirrors {
		out[i] = WorkKey{runID, m}
	}
	return out
}

// fakeJob is a job whose rows and judgement a test scripts. It is its own
// task.
type fakeJob struct {
	// work does a row; nil: done at once, with the mirror's id as its
	// files' result.
	work func(ctx context.Context, row *Row) (Result, bool)
	// judge judges; nil: completed.
	judge func(ctx context.Context, j *Judgement) (Ending, error)
	// prepare fails Prepare when it returns an error; nil: never.
	prepare func(ctx context.Context, run Run) error

	mu       sync.Mutex
	worked   map[WorkKey]int // rows worked (Work returned ok), by key
	judged   map[int64]int
	inFlight map[int]int // per mirror, rows being worked now
	maxIn    map[int]int // per mirror, the most rows worked at once
	total    atomic.Int32
	maxTotal atomic.Int32
}

func newFakeJob() *fakeJob {
	return &fakeJob{worked: map[WorkKey]int{}, judged: map[int64]int{}, inFlight: map[int]int{}, maxIn: map[int]int{}}
}

func (f *fakeJob) Plan(_ context.Context, run Run) (Plan, error) {
	var p struct{ Mirrors []int }
	if err := json.Unmarshal(run.Params, &p); err != nil {
		return Plan{}, err
	}
	return Plan{Params: p, Mirrors: p.Mirrors}, nil
}

func (f *fakeJob) Prepare(ctx context.Context, run Run) (Task, error) {
	if f.prepare != nil {
		if err := f.prepare(ctx, run); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (f *fakeJob) Interrupted(cause error, done, total int) string {
	return fmt.Sprintf("interrupted (%v): %d of %d", cause, done, total)
}

func (f *fakeJob) Work(ctx context.Context, row *Row) (Result, bool) {
	f.mu.Lock()
	f.inFlight[row.MirrorID]++
	f.maxIn[row.MirrorID] = max(f.maxIn[row.MirrorID], f.inFlight[row.MirrorID])
	f.mu.Unlock()
	n := f.total.Add(1)
	for m := f.maxTotal.Load(); n > m && !f.maxTotal.CompareAndSwap(m, n); m = f.maxTotal.Load() {
	}
	defer func() {
		f.total.Add(-1)
		f.mu.Lock()
		f.inFlight[row.MirrorID]--
		f.mu.Unlock()
	}()
	res, ok := Result{Files: row.MirrorID}, true
	if f.work != nil {
		res, ok = f.work(ctx, row)
	}
	if ok {
		f.mu.Lock()
		f.worked[WorkKey{row.Run.ID, row.MirrorID}]++
		f.mu.Unlock()
	}
	return res, ok
}

func (f *fakeJob) Judge(ctx context.Context, j *Judgement) (Ending, error) {
	f.mu.Lock()
	f.judged[j.Run.ID]++
	f.mu.Unlock()
	if f.judge != nil {
		return f.judge(ctx, j)
	}
	return Ending{Outcome: store.OutcomeCompleted}, nil
}

func (f *fakeJob) count(runID int64) (worked, judged int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, n := range f.worked {
		if k.RunID == runID {
			worked += n
		}
	}
	return worked, f.judged[runID]
}

// endings records the runs that ended, as the engine announces them.
type endings struct {
	mu   sync.Mutex
	runs map[int64][]string
}

func (e *endings) RunFinished(ev observe.RunEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.runs == nil {
		e.runs = map[int64][]string{}
	}
	e.runs[ev.RunID] = append(e.runs[ev.RunID], ev.Outcome)
}

func (e *endings) of(runID int64) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.runs[runID])
}

func (*endings) CheckDone(observe.CheckEvent)          {}
func (*endings) StateChanged(observe.StateChangeEvent) {}
func (*endings) GuardHeld(observe.GuardEvent)          {}

// request is a Drive request of a fake run over mirrors.
func request(kind string, mirrors []int) Request {
	return Request{Kind: kind, Params: map[string]any{"mirrors": mirrors}}
}

// TestDriveWorksEveryRowOnceAndJudgesOnce: a command's run is planned,
// every row worked once (with two daemons helping), judged once, its end
// announced once, and its rows returned with what each found.
func TestDriveWorksEveryRowOnceAndJudgesOnce(t *testing.T) {
	b := setup(t, 30)
	job := newFakeJob()
	b.daemon(b.engine("default", job, 0, 4))
	b.daemon(b.engine("default", job, 0, 4))
	fin, err := b.engine("default", job, 0, 4).Drive(b.ctx, request(store.RunPrime, b.mirrors))
	if err != nil {
		t.Fatal(err)
	}
	if fin.Outcome != store.OutcomeCompleted || fin.Joined {
		t.Errorf("finished %+v", fin)
	}
	if worked, judged := job.count(fin.Run.ID); worked != len(b.mirrors) || judged != 1 {
		t.Errorf("worked %d rows, judged %d times; want %d and 1", worked, judged, len(b.mirrors))
	}
	for k, n := range job.worked {
		if n != 1 {
			t.Errorf("row %v worked %d times", k, n)
		}
	}
	if got := b.ended.of(fin.Run.ID); !slices.Equal(got, []string{store.OutcomeCompleted}) {
		t.Errorf("end announced %v, want once, completed", got)
	}
	if len(fin.Rows) != len(b.mirrors) {
		t.Fatalf("%d rows returned, want %d", len(fin.Rows), len(b.mirrors))
	}
	for i, r := range fin.Rows {
		if r.MirrorID != b.mirrors[i] || string(r.Files) != fmt.Sprint(r.MirrorID) {
			t.Errorf("row %d: mirror %d, files %s", i, r.MirrorID, r.Files)
		}
	}
	var instances int
	b.scalar(`SELECT count(DISTINCT done_by) FROM sentry_work WHERE run_id = $1`, &instances, fin.Run.ID)
	if instances < 2 {
		t.Logf("rows done by %d instances (the daemons may not have been needed)", instances)
	}
}

// TestDriveRecordsAFailedPlan: a run whose plan fails is recorded as
// failed, with the reason, and its end is announced.
func TestDriveRecordsAFailedPlan(t *testing.T) {
	b := setup(t, 1)
	job := newFakeJob()
	req := Request{Kind: store.RunPrime, Params: "not an object"}
	_, err := b.engine("default", job, 0, 4).Drive(b.ctx, req)
	if err == nil {
		t.Fatal("a plan that fails: no error")
	}
	var id int64
	var reason string
	b.scalar(`SELECT id FROM sentry_runs`, &id)
	b.scalar(`SELECT reason FROM sentry_runs`, &reason)
	if b.outcome(id) != store.OutcomeFailed || reason != err.Error() {
		t.Errorf("run %s %q, want failed %q", b.outcome(id), reason, err)
	}
	if got := b.ended.of(id); !slices.Equal(got, []string{store.OutcomeFailed}) {
		t.Errorf("end announced %v", got)
	}
}

// TestOneRunPerKey: while a run with a key is running, a second request
// with the key joins it (or is refused, with the run's id); every row is
// still worked once. Once it ended, the key starts a new run.
func TestOneRunPerKey(t *testing.T) {
	b := setup(t, 12)
	job := newFakeJob()
	release := make(chan struct{})
	job.work = func(ctx context.Context, row *Row) (Result, bool) {
		select {
		case <-release:
		case <-ctx.Done():
			return Result{}, false
		}
		return Result{Files: 1}, true
	}
	b.daemon(b.engine("default", job, 0, 4))
	req := request(store.RunPrime, b.mirrors)
	req.Key, req.Join = "prime 1.5", true
	started := make(chan Run, 1)
	first := req
	first.Started = func(run Run, joined bool) { started <- run }
	done := make(chan *Finished, 2)
	go func() {
		fin, err := b.engine("default", job, 0, 4).Drive(b.ctx, first)
		if err != nil {
			t.Error(err)
		}
		done <- fin
	}()
	run := <-started
	refused := req
	refused.Join = false
	if _, err := b.engine("default", job, 0, 4).Drive(b.ctx, refused); err == nil {
		t.Error("a second run of the key was not refused")
	} else if re := (RunningError{}); !errors.As(err, &re) || re.RunID != run.ID {
		t.Errorf("refusal %v, want a RunningError naming run %d", err, run.ID)
	}
	go func() {
		fin, err := b.engine("default", job, 0, 4).Drive(b.ctx, req)
		if err != nil {
			t.Error(err)
		}
		done <- fin
	}()
	b.until("the joining command to register", func() bool {
		var n int
		b.scalar(`SELECT count(*) FROM sentry_instances WHERE role = 'command' AND stopped_at IS NULL`, &n)
		return n == 2
	})
	close(release)
	a, c := <-done, <-done
	if a.Run.ID != run.ID || c.Run.ID != run.ID || a.Joined == c.Joined {
		t.Errorf("runs %d (joined %v) and %d (joined %v), want both %d, one joined", a.Run.ID, a.Joined, c.Run.ID, c.Joined, run.ID)
	}
	var runs int
	b.scalar(`SELECT count(*) FROM sentry_runs`, &runs)
	if runs != 1 {
		t.Errorf("%d runs recorded, want 1", runs)
	}
	for k, n := range job.worked {
		if n != 1 {
			t.Errorf("row %v worked %d times", k, n)
		}
	}
	// The key is free again.
	req.Started = nil
	fin, err := b.engine("default", job, 0, 4).Drive(b.ctx, req)
	if err != nil || fin.Run.ID == run.ID || fin.Joined {
		t.Errorf("after the end: %+v, %v; want a new run", fin, err)
	}
}

// TestQueueBehindRunningSweep: a scheduled sweep does not start while
// another of its group runs (a GroupBusyError, reading as the kind's Busy
// error) unless it queues: then it starts once the running one ended, and
// completes. A slot started already is taken.
func TestQueueBehindRunningSweep(t *testing.T) {
	b := setup(t, 3)
	job := newFakeJob()
	hold := make(chan struct{})
	var held atomic.Bool
	job.work = func(ctx context.Context, row *Row) (Result, bool) {
		if row.Run.Kind == store.RunSweep && !held.Load() {
			select {
			case <-hold:
				held.Store(true)
			case <-ctx.Done():
				return Result{}, false
			}
		}
		return Result{Files: 1}, true
	}
	e := b.engine("default", job, 0, 8)
	w := b.daemon(e)
	slot := time.Date(2030, 1, 1, 3, 0, 0, 0, time.UTC)
	light := request(store.RunSweep, b.mirrors)
	light.Slot, light.Worker = slot, w
	lightDone := make(chan error, 1)
	go func() { _, err := e.Drive(b.ctx, light); lightDone <- err }()
	b.until("the light sweep to start", func() bool {
		var n int
		b.scalar(`SELECT count(*) FROM sentry_runs WHERE kind = 'sweep' AND ready`, &n)
		return n == 1
	})
	deep := request(store.RunDeepSweep, b.mirrors)
	deep.Slot, deep.Worker = slot.Add(time.Hour), w
	var lightID int64
	b.scalar(`SELECT id FROM sentry_runs WHERE kind = 'sweep'`, &lightID)
	_, err := e.Drive(b.ctx, deep)
	var busy GroupBusyError
	if !errors.Is(err, ErrGroupBusy) || !errors.Is(err, errSweepBusy) || !errors.As(err, &busy) {
		t.Fatalf("deep sweep while a sweep runs: %v, want a GroupBusyError wrapping the kind's Busy error", err)
	}
	if want := fmt.Sprintf("another sweep is still running (run %d)", lightID); busy.Group != "sweep" || busy.RunID != lightID || err.Error() != want {
		t.Errorf("busy: %+v %q, want group sweep, run %d, %q", busy, err, lightID, want)
	}
	if _, err := e.Drive(b.ctx, light); !errors.Is(err, ErrSlotTaken) {
		t.Errorf("the same slot again: %v, want ErrSlotTaken", err)
	}
	deep.Queue = true
	deepDone := make(chan *Finished, 1)
	go func() {
		fin, err := e.Drive(b.ctx, deep)
		if err != nil {
			t.Error(err)
		}
		deepDone <- fin
	}()
	var deepRuns int
	b.scalar(`SELECT count(*) FROM sentry_runs WHERE kind = 'deep_sweep'`, &deepRuns)
	if deepRuns != 0 {
		t.Errorf("the queued deep sweep started while the light one runs")
	}
	close(hold)
	if err := <-lightDone; err != nil {
		t.Fatal(err)
	}
	fin := <-deepDone
	if fin == nil || fin.Outcome != store.OutcomeCompleted {
		t.Errorf("queued deep sweep: %+v", fin)
	}
}

// TestCloseAbandoned: a running run that no working sentry can finish —
// its creator gone and no daemon alive, or recorded before runs had
// creators, or a placeholder whose creator died before planning it (a
// release hook's daemon killed) — is closed as interrupted; one whose
// creator still beats stays.
func TestCloseAbandoned(t *testing.T) {
	b := setup(t, 1)
	e := b.engine("default", newFakeJob(), 0, 4)
	b.exec(`INSERT INTO sentry_instances (id, vantage, role, host, pid, last_seen)
		VALUES ('gone', 'x', 'command', 'h', 1, now() - interval '1 hour'), ('beating', 'x', 'command', 'h', 2, now())`)
	b.exec(`INSERT INTO sentry_runs (kind, vantage, host, pid, instance, ready, key) VALUES
		('sweep', 'x', 'h', 1, 'gone', true, NULL), ('sweep', 'x', 'h', 2, 'beating', true, NULL),
		('sweep', 'x', 'h', 3, NULL, true, NULL), ('prime', 'x', 'h', 1, 'gone', false, 'prime 1.5')`)
	n, err := e.CloseAbandoned(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := b.st.Pool().Query(b.ctx, `SELECT coalesce(instance, ''), ready, outcome FROM sentry_runs ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var inst, outcome string
		var ready bool
		if err := rows.Scan(&inst, &ready, &outcome); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s/%v:%s", inst, ready, outcome))
	}
	want := []string{"gone/true:interrupted", "beating/true:running", "/true:interrupted", "gone/false:interrupted"}
	if n != 3 || !slices.Equal(got, want) {
		t.Errorf("closed %d: %v, want 3: %v", n, got, want)
	}
	// The placeholder's key is free again.
	w := b.worker(e, RoleCommand)
	if _, joined, err := e.begin(b.ctx, Request{Kind: store.RunPrime, Key: "prime 1.5"}, w.id); err != nil || joined {
		t.Errorf("the key after its run was closed: joined %v, %v", joined, err)
	}
}

// TestEndOnce: a run ends once; ending it again changes nothing (a
// completed run is never rewritten as failed).
func TestEndOnce(t *testing.T) {
	b := setup(t, 2)
	e := b.engine("default", newFakeJob(), 0, 4)
	w := b.worker(e, RoleCommand)
	run, _ := b.start(w, store.RunPrime, false, 0, b.mirrors...)
	if ok, err := e.end(b.ctx, run.ID, store.OutcomeCompleted, "", nil, nil); !ok || err != nil {
		t.Fatalf("end: %v %v", ok, err)
	}
	if ok, err := e.end(b.ctx, run.ID, store.OutcomeFailed, "late", nil, nil); ok || err != nil {
		t.Errorf("second end: %v %v, want false", ok, err)
	}
	var reason string
	b.scalar(`SELECT reason FROM sentry_runs WHERE id = $1`, &reason, run.ID)
	if b.outcome(run.ID) != store.OutcomeCompleted || reason != "" {
		t.Errorf("run rewritten: %s %q", b.outcome(run.ID), reason)
	}
	var open int
	b.scalar(`SELECT count(*) FROM sentry_work WHERE run_id = $1 AND NOT done`, &open, run.ID)
	if open != 0 {
		t.Errorf("%d rows left open by the end", open)
	}
}

// TestVantagesSeen: the electorate of the default quorum is the vantage
// points of recent sweeps and of daemons seen lately, not those of
// commands such as a prime run from an operator's machine.
func TestVantagesSeen(t *testing.T) {
	b := setup(t, 1)
	us := b.engine("us", newFakeJob(), 0, 4)
	b.worker(us, RoleDaemon)
	b.worker(b.engine("laptop", newFakeJob(), 0, 4), RoleCommand)
	seen := func() []string {
		t.Helper()
		v, err := us.vantagesSeen(b.ctx, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := seen(); !slices.Equal(got, []string{"us"}) {
		t.Errorf("with a daemon at us and a command at laptop: %v, want [us]", got)
	}
	// A sweep created by a command at eu while the daemon at us lives:
	// both check every mirror's reachability, both are seen.
	b.start(b.worker(b.engine("eu", newFakeJob(), 0, 4), RoleCommand), store.RunSweep, true, 0, b.mirrors...)
	if got := seen(); !slices.Equal(got, []string{"eu", "us"}) {
		t.Errorf("after a sweep shared by eu and us: %v, want [eu us]", got)
	}
}

// testLogger logs to the test's log (shown when it fails, or with -v).
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
