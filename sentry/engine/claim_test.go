package engine

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestClaimsNeverOverlap: workers claiming at once never get the same row
// and between them get every row (SKIP LOCKED, and one row per mirror).
func TestClaimsNeverOverlap(t *testing.T) {
	b := setup(t, 150)
	e := b.engine("default", newFakeJob(), 0, 200)
	creator := b.worker(e, RoleCommand)
	run, _ := b.start(creator, store.RunPrime, false, 0, b.mirrors...)
	const claimers = 8
	var mu sync.Mutex
	var got []*Row
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range claimers {
		w := b.worker(e, RoleDaemon)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				rows, err := e.claimOnce(b.ctx, w)
				if err != nil {
					t.Error(err)
					return
				}
				if len(rows) == 0 {
					return
				}
				mu.Lock()
				got = append(got, rows...)
				mu.Unlock()
				if len(w.held.rows) >= 200 {
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if k := keysOf(got); !slices.Equal(k, keys(run.ID, b.mirrors...)) {
		t.Errorf("claimed %d rows (%v), want each of %d once", len(k), k, len(b.mirrors))
	}
}

// TestTakeoverAfterTheLease: a held row is claimable by another only after
// its lease ran out, and then counts a second claim (a new fence token);
// its last holder does not claim it back from itself.
func TestTakeoverAfterTheLease(t *testing.T) {
	b := setup(t, 3)
	e := b.engine("default", newFakeJob(), 0, 10)
	a, c := b.worker(e, RoleDaemon), b.worker(e, RoleDaemon)
	run, rows := b.start(a, store.RunPrime, false, 3, b.mirrors...)
	if len(rows) != 3 || rows[0].Claims != 1 {
		t.Fatalf("creator claimed %d rows (%+v)", len(rows), rows)
	}
	if got := b.claim(c, run.ID, 3); len(got) != 0 {
		t.Errorf("rows under a live lease claimed: %v", keysOf(got))
	}
	b.exec(`UPDATE sentry_work SET lease_until = now() - interval '1s' WHERE run_id = $1 AND mirror_id = $2`, run.ID, b.mirrors[0])
	delete(a.held.rows, WorkKey{run.ID, b.mirrors[0]}) // as if a's copy ended
	if got := b.claim(a, run.ID, 3); len(got) != 0 {
		t.Errorf("the last holder claimed its own lapsed row back: %v", keysOf(got))
	}
	got := b.claim(c, run.ID, 3)
	if k := keysOf(got); !slices.Equal(k, keys(run.ID, b.mirrors[0])) || got[0].Claims != 2 {
		t.Fatalf("takeover claimed %v (%+v), want the lapsed row, claim 2", k, got)
	}
}

// TestMirrorHeldAcrossRuns: a mirror is worked by one row at a time,
// whatever run the row belongs to. Three daemons and a command working a
// prime and two sweeps of the same mirrors at once never work one mirror
// twice at the same moment; every row of every run is worked once; and a
// prime's rows are claimed before a sweep's.
func TestMirrorHeldAcrossRuns(t *testing.T) {
	b := setup(t, 6)
	job := newFakeJob()
	var mu sync.Mutex
	var order []string // kinds in the order rows started
	gate := make(chan struct{})
	job.work = func(ctx context.Context, row *Row) (Result, bool) {
		mu.Lock()
		order = append(order, row.Run.Kind)
		mu.Unlock()
		select {
		case <-gate:
		case <-ctx.Done():
			return Result{}, false
		}
		return Result{Files: 1}, true
	}
	// The runs exist before any worker claims, so that the order of
	// claims, not of creation, is seen.
	creator := b.worker(b.engine("default", job, 0, 4), RoleDaemon)
	sweepA, _ := b.start(creator, store.RunSweep, false, 0, b.mirrors...)
	sweepB, _ := b.start(creator, store.RunSweep, false, 0, b.mirrors...)
	primeRun, _ := b.start(creator, store.RunPrime, false, 0, b.mirrors...)
	for range 3 {
		b.daemon(b.engine("default", job, 0, 4))
	}
	b.until("every mirror to be held", func() bool {
		var n int
		b.scalar(`SELECT count(DISTINCT mirror_id) FROM sentry_work WHERE claimed_by IS NOT NULL AND NOT done`, &n)
		return n == len(b.mirrors)
	})
	close(gate)
	for _, id := range []int64{sweepA.ID, sweepB.ID, primeRun.ID} {
		b.until("every run to end", func() bool { return b.outcome(id) == store.OutcomeCompleted })
	}
	for m, n := range job.maxIn {
		if n > 1 {
			t.Errorf("mirror %d worked by %d rows at once", m, n)
		}
	}
	for _, id := range []int64{sweepA.ID, sweepB.ID, primeRun.ID} {
		if worked, judged := job.count(id); worked != len(b.mirrors) || judged != 1 {
			t.Errorf("run %d: %d rows worked, judged %d times; want %d, 1", id, worked, judged, len(b.mirrors))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if first := order[:len(b.mirrors)]; slices.Contains(first, store.RunSweep) {
		t.Errorf("rows started in the order %v: sweeps before the prime's", order)
	}
}

// TestClaimsStayWithinSlots: a worker never holds more rows than its
// slots, even while the claims made when it creates a run race its claim
// loop.
func TestClaimsStayWithinSlots(t *testing.T) {
	b := setup(t, 24)
	job := newFakeJob()
	gate := make(chan struct{})
	job.work = func(ctx context.Context, row *Row) (Result, bool) {
		select {
		case <-gate:
		case <-ctx.Done():
			return Result{}, false
		}
		return Result{Files: 1}, true
	}
	e := b.engine("default", job, 0, 3)
	w := b.daemon(e)
	done := make(chan error, 4)
	for i := range 4 {
		go func() {
			req := request(store.RunSweep, b.mirrors[i*6:(i+1)*6])
			req.Worker = w
			_, err := e.Drive(b.ctx, req)
			done <- err
		}()
	}
	b.until("the worker to fill its slots", func() bool { return job.total.Load() == 3 })
	close(gate)
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := job.maxTotal.Load(); n > 3 {
		t.Errorf("%d rows worked at once by a worker of 3 slots", n)
	}
}

// TestReachFromEveryVantagePoint: in a sweep every working vantage point
// checks each mirror's reachability and one checks its files; a mirror
// unreachable from one vantage point leaves its files to another; a
// mirror unreachable from every one is done without its files.
func TestReachFromEveryVantagePoint(t *testing.T) {
	b := setup(t, 3)
	job := newFakeJob()
	eu, us := b.engine("eu", job, 0, 10), b.engine("us", job, 0, 10)
	weu, wus := b.worker(eu, RoleDaemon), b.worker(us, RoleDaemon)
	run, _ := b.start(weu, store.RunSweep, true, 0, b.mirrors...)
	m1, m2, m3 := b.mirrors[0], b.mirrors[1], b.mirrors[2]
	done := func(e *Engine, w *Worker, r *Row, res Result) {
		t.Helper()
		if ok, err := e.complete(b.ctx, r.fence, w.id, res); !ok || err != nil {
			t.Fatalf("complete %v: %v %v", r.MirrorID, ok, err)
		}
		delete(w.held.rows, WorkKey{r.Run.ID, r.MirrorID})
	}
	rows := b.claim(weu, run.ID, 3)
	for _, r := range rows {
		if !r.Reach || !r.Files {
			t.Errorf("eu's first claim of %d: reach %v files %v", r.MirrorID, r.Reach, r.Files)
		}
		switch r.MirrorID {
		case m1:
			done(eu, weu, r, Result{Verdict: "ok", Files: "m1"})
		default:
			done(eu, weu, r, Result{Verdict: "down", Unreachable: true})
		}
	}
	rows = b.claim(wus, run.ID, 3)
	if k := keysOf(rows); !slices.Equal(k, keys(run.ID, m1, m2, m3)) {
		t.Fatalf("us claimed %v", k)
	}
	for _, r := range rows {
		wantFiles := r.MirrorID != m1
		if !r.Reach || r.Files != wantFiles {
			t.Errorf("us's claim of %d: reach %v files %v, want files %v", r.MirrorID, r.Reach, r.Files, wantFiles)
		}
		switch r.MirrorID {
		case m1:
			done(us, wus, r, Result{Verdict: "ok"})
		case m2:
			done(us, wus, r, Result{Verdict: "ok", Files: "m2 from us"})
		case m3:
			done(us, wus, r, Result{Verdict: "down", Unreachable: true})
		}
	}
	rowsNow, err := eu.rows(b.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var open int
	b.scalar(`SELECT count(*) FROM sentry_work WHERE run_id = $1 AND NOT done`, &open, run.ID)
	if open != 0 {
		t.Errorf("%d rows still open", open)
	}
	for _, r := range rowsNow {
		want := map[int]string{m1: `"m1"`, m2: `"m2 from us"`, m3: ""}[r.MirrorID]
		if string(r.Files) != want {
			t.Errorf("mirror %d: files %s, want %s", r.MirrorID, r.Files, want)
		}
	}
}

// TestForgetGoneVantages: a vantage point that no working sentry has any
// more is dropped from the open rows, so that the run can end without it.
func TestForgetGoneVantages(t *testing.T) {
	b := setup(t, 2)
	job := newFakeJob()
	eu, ap := b.engine("eu", job, 0, 10), b.engine("ap", job, 0, 10)
	weu, wap := b.worker(eu, RoleDaemon), b.worker(ap, RoleDaemon)
	run, _ := b.start(weu, store.RunSweep, true, 0, b.mirrors...)
	for _, r := range b.claim(weu, run.ID, 2) {
		if ok, err := eu.complete(b.ctx, r.fence, weu.id, Result{Verdict: "ok", Files: 1}); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if n, _ := eu.forgetGoneVantages(b.ctx); n != 0 {
		t.Errorf("forgot %d rows while ap lives", n)
	}
	b.exec(`UPDATE sentry_instances SET last_seen = now() - interval '1 day' WHERE id = $1`, wap.id)
	n, err := eu.forgetGoneVantages(b.ctx)
	if err != nil || n != 2 {
		t.Fatalf("forgot %d rows (%v), want 2", n, err)
	}
	var open int
	b.scalar(`SELECT count(*) FROM sentry_work WHERE run_id = $1 AND NOT done`, &open, run.ID)
	if open != 0 {
		t.Errorf("%d rows still open after ap left", open)
	}
}

// TestPick: of the candidates, in their order, the first of each mirror
// this claimer locked and no other row holds, up to n.
func TestPick(t *testing.T) {
	k := func(run int64, mirror int) WorkKey { return WorkKey{run, mirror} }
	cands := []WorkKey{k(1, 10), k(2, 10), k(1, 11), k(1, 12), k(3, 13)}
	for _, c := range []struct {
		name         string
		locked, held []int32
		n            int
		want         []WorkKey
	}{
		{"every mirror free", []int32{10, 11, 12, 13}, nil, 10, []WorkKey{k(1, 10), k(1, 11), k(1, 12), k(3, 13)}},
		{"up to n", []int32{10, 11, 12, 13}, nil, 2, []WorkKey{k(1, 10), k(1, 11)}},
		{"one row per mirror, the first", []int32{10}, nil, 10, []WorkKey{k(1, 10)}},
		{"not locked: another claimer's", []int32{11, 13}, nil, 10, []WorkKey{k(1, 11), k(3, 13)}},
		{"held by another row", []int32{10, 11, 12, 13}, []int32{10, 12}, 10, []WorkKey{k(1, 11), k(3, 13)}},
		{"nothing free", []int32{10}, []int32{10}, 10, nil},
		{"no slot", []int32{10, 11}, nil, 0, nil},
	} {
		if got := pick(cands, c.locked, c.held, c.n); !slices.Equal(got, c.want) {
			t.Errorf("%s: picked %v, want %v", c.name, got, c.want)
		}
	}
}
