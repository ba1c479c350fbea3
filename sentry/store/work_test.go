package store_test

// Tests of the shared work rows (work.go) on a real PostgreSQL database:
// instances, runs and the sentry_work rows they claim under leases.
//
// No test sleeps or measures time. Leases are long (a minute: they never
// run out by themselves while a test runs); a lease running out, or an
// instance falling silent, is simulated by moving lease_until, judge_until
// or last_seen into the past with SQL.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/store"
)

// lease is the lease of every claim, and how recently an instance must have
// been seen to count as working.
const lease = time.Minute

// world is a migrated database with mirrors and a release, and the store
// the tests work through.
type world struct {
	t       *testing.T
	ctx     context.Context
	st      *store.Store
	url     string
	mirrors []int // ids in mirror_mirrors
	release int64
}

// newWorld opens a store on a fresh database, migrates it and inserts n
// mirrors and one release.
func newWorld(t *testing.T, n int) *world {
	t.Helper()
	st, url := setup(t)
	w := &world{t: t, ctx: context.Background(), st: st, url: url}
	if _, err := st.Migrate(w.ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := st.Pool().Query(w.ctx, `INSERT INTO mirror_mirrors (name, baseurl)
		SELECT 'm' || i, 'http://m' || i || '.example.org/pub' FROM generate_series(1, $1) i RETURNING id`, n)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		w.mirrors = append(w.mirrors, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(w.mirrors)
	rel, err := st.SaveRelease(w.ctx, "1.0", "https://example.org/1.0/manifest", "sha", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.release = rel.ID
	return w
}

// with is w for subtest t.
func (w world) with(t *testing.T) *world {
	w.t = t
	return &w
}

// instance registers a working instance.
func (w *world) instance(id, vantage, role string) {
	w.t.Helper()
	if err := w.st.RegisterInstance(w.ctx, store.Instance{ID: id, Vantage: vantage, Role: role}); err != nil {
		w.t.Fatal(err)
	}
}

// stop stops an instance (StopInstance).
func (w *world) stop(id string) {
	w.t.Helper()
	if err := w.st.StopInstance(w.ctx, id); err != nil {
		w.t.Fatal(err)
	}
}

// silence makes an instance look dead: not seen for much longer than a
// lease, without having stopped.
func (w *world) silence(id string) {
	w.t.Helper()
	w.exec(`UPDATE sentry_instances SET last_seen = now() - interval '1 day' WHERE id = $1`, id)
}

// expire makes the leases on a run's rows (of the given mirrors, every
// one when none are given) run out, as if their holder had been silent.
func (w *world) expire(runID int64, mirrors ...int) {
	w.t.Helper()
	if mirrors == nil {
		mirrors = []int{} // not NULL
	}
	w.exec(`UPDATE sentry_work SET lease_until = now() - interval '1s'
		WHERE run_id = $1 AND claimed_by IS NOT NULL AND (cardinality($2::int[]) = 0 OR mirror_id = ANY ($2))`,
		runID, mirrors)
}

func (w *world) exec(sql string, args ...any) {
	w.t.Helper()
	if _, err := w.st.Pool().Exec(w.ctx, sql, args...); err != nil {
		w.t.Fatal(err)
	}
}

// sweep creates a sweep whose rows every working vantage point checks
// (Reach), over the given mirrors (every mirror when none are given), by
// instance id at vantage, claiming nothing.
func (w *world) sweep(id, vantage string, mirrors ...int) store.Run {
	w.t.Helper()
	if len(mirrors) == 0 {
		mirrors = w.mirrors
	}
	r, _, err := w.st.CreateRun(w.ctx, store.NewRun{Kind: store.RunSweep, Vantage: vantage, Instance: id,
		Mirrors: mirrors, Reach: true, Lease: lease}, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

// prime creates a prime (rows done from one place, no Reach) over the
// given mirrors (every mirror when none are given), claiming nothing.
func (w *world) prime(id, vantage string, mirrors ...int) store.Run {
	w.t.Helper()
	if len(mirrors) == 0 {
		mirrors = w.mirrors
	}
	r, _, err := w.st.CreateRun(w.ctx, store.NewRun{Kind: store.RunPrime, ReleaseID: w.release, Vantage: vantage,
		Instance: id, Mirrors: mirrors, Lease: lease}, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

func (w *world) claim(id, vantage string, runID int64, n int) []store.Claim {
	w.t.Helper()
	c, err := w.st.ClaimWork(w.ctx, id, vantage, runID, n, lease)
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// claimOne claims exactly one row of run runID, or fails the test.
func (w *world) claimOne(id, vantage string, runID int64) store.Claim {
	w.t.Helper()
	c := w.claim(id, vantage, runID, 1)
	if len(c) != 1 {
		w.t.Fatalf("%s at %s claimed %d rows of run %d, want 1", id, vantage, len(c), runID)
	}
	return c[0]
}

func (w *world) complete(d store.WorkDone) bool {
	w.t.Helper()
	ok, err := w.st.CompleteWork(w.ctx, d)
	if err != nil {
		w.t.Fatal(err)
	}
	return ok
}

// finish has instance id claim and complete every row of run runID (a
// prime's: the files are done from anywhere).
func (w *world) finish(id, vantage string, runID int64) {
	w.t.Helper()
	for _, c := range w.claim(id, vantage, runID, 1000) {
		if !w.complete(store.WorkDone{WorkKey: c.WorkKey, Instance: id, Vantage: vantage, Result: "primed"}) {
			w.t.Fatalf("%s could not complete the row it claimed: %+v", id, c.WorkKey)
		}
	}
	if st := w.status(runID); st.Open != 0 {
		w.t.Fatalf("run %d: %d rows open after %s did them all", runID, st.Open, id)
	}
}

func (w *world) heartbeat(id string) []store.WorkKey {
	w.t.Helper()
	keys, err := w.st.Heartbeat(w.ctx, id, lease)
	if err != nil {
		w.t.Fatal(err)
	}
	return sortKeys(keys)
}

func (w *world) judging(id string, runID int64) []int64 {
	w.t.Helper()
	js, err := w.st.ClaimJudging(w.ctx, id, runID, lease)
	if err != nil {
		w.t.Fatal(err)
	}
	ids := make([]int64, len(js))
	for i, j := range js {
		ids[i] = j.ID
	}
	slices.Sort(ids)
	return ids
}

func (w *world) status(runID int64) store.RunStatus {
	w.t.Helper()
	st, err := w.st.RunStatus(w.ctx, runID)
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

// rowState is a work row as stored; arrays sorted, NULLs as "".
type rowState struct {
	Vantages, Needs, NotFrom []string
	FilesDone, Done          bool
	ClaimedBy, DoneBy        string
	Leased                   bool // lease_until is set
	Claims                   int
	Verdicts, Result         string
}

func (w *world) row(runID int64, mirrorID int) rowState {
	w.t.Helper()
	var r rowState
	err := w.st.Pool().QueryRow(w.ctx, `SELECT
			ARRAY(SELECT unnest(vantages) ORDER BY 1), ARRAY(SELECT unnest(needs) ORDER BY 1),
			ARRAY(SELECT unnest(not_from) ORDER BY 1), files_done, done,
			coalesce(claimed_by, ''), coalesce(done_by, ''), lease_until IS NOT NULL, claims,
			verdicts::text, coalesce(result::text, '')
		FROM sentry_work WHERE run_id = $1 AND mirror_id = $2`, runID, mirrorID).
		Scan(&r.Vantages, &r.Needs, &r.NotFrom, &r.FilesDone, &r.Done,
			&r.ClaimedBy, &r.DoneBy, &r.Leased, &r.Claims, &r.Verdicts, &r.Result)
	if err != nil {
		w.t.Fatalf("row %d/%d: %v", runID, mirrorID, err)
	}
	return r
}

func sortKeys(ks []store.WorkKey) []store.WorkKey {
	slices.SortFunc(ks, func(a, b store.WorkKey) int {
		return cmp.Or(cmp.Compare(a.RunID, b.RunID), cmp.Compare(a.MirrorID, b.MirrorID))
	})
	return ks
}

func keys(runID int64, mirrors ...int) []store.WorkKey {
	ks := make([]store.WorkKey, len(mirrors))
	for i, m := range mirrors {
		ks[i] = store.WorkKey{RunID: runID, MirrorID: m}
	}
	return ks
}

func claimedKeys(cs []store.Claim) []store.WorkKey {
	ks := make([]store.WorkKey, len(cs))
	for i, c := range cs {
		ks[i] = c.WorkKey
	}
	return sortKeys(ks)
}

// 1. CreateRun: one row per mirror, in order, whose vantage points are
// those of the live daemons and of the creator; the creator's first rows
// claimed in the same transaction; one scheduled sweep at a time.
func TestCreateRun(t *testing.T) {
	w := newWorld(t, 5)
	w.instance("d-eu-1", "eu", store.RoleDaemon)
	w.instance("d-eu-2", "eu", store.RoleDaemon) // same vantage: counted once
	w.instance("d-us", "us", store.RoleDaemon)
	w.instance("d-ap", "ap", store.RoleDaemon)
	w.stop("d-ap") // stopped: not working
	w.instance("d-sa", "sa", store.RoleDaemon)
	w.silence("d-sa")                           // not seen for a lease: dead
	w.instance("c-af", "af", store.RoleCommand) // another command works only its own run
	w.instance("c-local", "local", store.RoleCommand)

	t.Run("vantages and claims", func(t *testing.T) {
		w := w.with(t)
		for _, tc := range []struct {
			name     string
			creator  string // instance; "c-unregistered" has no row in sentry_instances
			vantage  string
			kind     string
			reach    bool
			claim    int
			vantages []string
		}{
			{"command sweep", "c-local", "local", store.RunSweep, true, 2, []string{"eu", "local", "us"}},
			{"daemon sweep", "d-us", "us", store.RunSweep, true, 1, []string{"eu", "us"}},
			{"creator not registered yet", "c-unregistered", "mars", store.RunDeepSweep, true, 0, []string{"eu", "mars", "us"}},
			{"prime: no reachability rounds", "c-local", "local", store.RunPrime, false, 3, []string{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				w := w.with(t)
				params := map[string]any{"case": tc.name}
				run, claims, err := w.st.CreateRun(w.ctx, store.NewRun{Kind: tc.kind, Vantage: tc.vantage, Instance: tc.creator,
					Params: params, Mirrors: w.mirrors, Reach: tc.reach, Lease: lease, Claim: tc.claim}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if run.ID == 0 || run.Kind != tc.kind || run.StartedAt.IsZero() {
					t.Fatalf("run = %+v", run)
				}
				if st := w.status(run.ID); st.Total != len(w.mirrors) || st.Open != len(w.mirrors) || st.Outcome != store.OutcomeRunning {
					t.Fatalf("status = %+v, want %d open rows of a running run", st, len(w.mirrors))
				}
				var order []int
				if err := w.st.WorkRows(w.ctx, run.ID, func(r store.WorkRow) error {
					order = append(order, r.MirrorID)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(order, w.mirrors) {
					t.Errorf("rows in order %v, want one per mirror %v", order, w.mirrors)
				}
				// The first Claim rows are the creator's, under its lease.
				if got, want := claimedKeys(claims), keys(run.ID, w.mirrors[:tc.claim]...); !slices.Equal(got, want) {
					t.Errorf("creator claimed %v, want %v", got, want)
				}
				for _, c := range claims {
					if c.Kind != tc.kind || !c.StartedAt.Equal(run.StartedAt) || c.Claims != 1 ||
						c.Reach != tc.reach || !c.Files || string(c.Params) != fmt.Sprintf(`{"case": %q}`, tc.name) {
						t.Errorf("claim = %+v", c)
					}
				}
				for i, m := range w.mirrors {
					r := w.row(run.ID, m)
					if !slices.Equal(r.Vantages, tc.vantages) || !slices.Equal(r.Needs, tc.vantages) {
						t.Errorf("mirror %d: vantages %v needs %v, want %v", m, r.Vantages, r.Needs, tc.vantages)
					}
					held := i < tc.claim
					if (r.ClaimedBy == tc.creator) != held || r.Leased != held || r.Claims != map[bool]int{true: 1}[held] {
						t.Errorf("mirror %d: claimed by %q (leased %v, %d claims), want held=%v by %s",
							m, r.ClaimedBy, r.Leased, r.Claims, held, tc.creator)
					}
				}
				// Another instance finds only the rows the creator did not take.
				rest := w.claim("d-eu-1", "eu", run.ID, 100)
				if got, want := claimedKeys(rest), keys(run.ID, w.mirrors[tc.claim:]...); !slices.Equal(got, want) {
					t.Errorf("another instance claimed %v, want the rest %v", got, want)
				}
			})
		}
	})

	t.Run("scheduled sweeps", func(t *testing.T) {
		w := w.with(t)
		slotA := time.Date(2030, 1, 1, 3, 0, 0, 0, time.UTC)
		slotB := slotA.Add(time.Hour)
		slotRun := func(kind string, slot time.Time) (store.Run, error) {
			r, _, err := w.st.CreateRun(w.ctx, store.NewRun{Kind: kind, Slot: slot, Vantage: "eu", Instance: "d-eu-1",
				Mirrors: w.mirrors, Reach: true, Lease: lease, Claim: 1}, nil)
			return r, err
		}
		count := func() (int, int) {
			t.Helper()
			var runs, rows int
			if err := w.st.Pool().QueryRow(w.ctx, `SELECT (SELECT count(*) FROM sentry_runs), (SELECT count(*) FROM sentry_work)`).
				Scan(&runs, &rows); err != nil {
				t.Fatal(err)
			}
			return runs, rows
		}
		a, err := slotRun(store.RunSweep, slotA)
		if err != nil {
			t.Fatal(err)
		}
		runs, rows := count()
		// While the sweep of slot A runs, the same slot is taken (another
		// daemon on the same schedule helps with it); no other scheduled
		// sweep starts, deep or not; and nothing is left behind.
		for _, tc := range []struct {
			kind string
			slot time.Time
			want error
		}{
			{store.RunSweep, slotA, store.ErrSlotTaken},
			{store.RunSweep, slotB, store.ErrSweepRunning},
			{store.RunDeepSweep, slotA, store.ErrSweepRunning},
			{store.RunDeepSweep, slotB, store.ErrSweepRunning},
		} {
			if _, err := slotRun(tc.kind, tc.slot); !errors.Is(err, tc.want) {
				t.Errorf("%s at %s while slot A runs: %v, want %v", tc.kind, tc.slot.Format(time.Kitchen), err, tc.want)
			}
		}
		if r, n := count(); r != runs || n != rows {
			t.Errorf("refused sweeps left %d runs and %d rows, want %d and %d", r, n, runs, rows)
		}
		// A sweep started by hand (no slot) is not held back.
		w.sweep("c-local", "local")
		// Once slot A's sweep ended, its slot stays taken; another starts.
		if ok, err := w.st.EndRun(w.ctx, a.ID, store.OutcomeCompleted, ""); err != nil || !ok {
			t.Fatalf("EndRun = %v, %v", ok, err)
		}
		if _, err := slotRun(store.RunSweep, slotA); !errors.Is(err, store.ErrSlotTaken) {
			t.Errorf("slot A again: %v, want ErrSlotTaken", err)
		}
		b, err := slotRun(store.RunSweep, slotB)
		if err != nil {
			t.Fatalf("slot B after A ended: %v", err)
		}
		if ok, err := w.st.EndRun(w.ctx, b.ID, store.OutcomeCompleted, ""); err != nil || !ok {
			t.Fatalf("EndRun = %v, %v", ok, err)
		}

		// Instances racing: exactly one sweep starts; the others are told
		// the slot is taken (same slot: the daemons of one schedule) or a
		// sweep runs (different slots).
		st, err := store.Open(w.ctx, w.url, 12)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		race := func(slot func(i int) time.Time, want error) {
			t.Helper()
			const racers = 8
			runs := make([]store.Run, racers)
			errs := make([]error, racers)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range racers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					runs[i], _, errs[i] = st.CreateRun(w.ctx, store.NewRun{Kind: store.RunSweep, Slot: slot(i),
						Vantage: "eu", Instance: "d-eu-1", Mirrors: w.mirrors, Reach: true, Lease: lease}, nil)
				}()
			}
			close(start)
			wg.Wait()
			var started []int64
			for i, err := range errs {
				switch {
				case err == nil:
					started = append(started, runs[i].ID)
				case !errors.Is(err, want):
					t.Errorf("racer %d: %v, want success or %v", i, err, want)
				}
			}
			if len(started) != 1 {
				t.Fatalf("%d of %d racing sweeps started, want 1: %v", len(started), racers, errs)
			}
			if ok, err := w.st.EndRun(w.ctx, started[0], store.OutcomeCompleted, ""); err != nil || !ok {
				t.Fatalf("EndRun = %v, %v", ok, err)
			}
		}
		race(func(int) time.Time { return slotB.Add(time.Hour) }, store.ErrSlotTaken)
		race(func(i int) time.Time { return slotB.Add(time.Duration(i+2) * time.Hour) }, store.ErrSweepRunning)
	})
}

// 2. ClaimWork: instances claiming at once never get the same row and
// between them get every row (SKIP LOCKED); a held row is claimable by
// another only after its lease ran out, and then counts a second claim.
func TestClaimWork(t *testing.T) {
	t.Run("concurrent instances share no row", func(t *testing.T) {
		const mirrors, n = 150, 2
		w := newWorld(t, mirrors)
		w.instance("a", "eu", store.RoleDaemon)
		w.instance("b", "us", store.RoleDaemon)
		run := w.sweep("a", "eu")
		// Each instance a process of its own: its own pool.
		type got struct {
			keys []store.WorkKey
			err  error
		}
		results := make(map[string]*got)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, in := range []store.Instance{{ID: "a", Vantage: "eu"}, {ID: "b", Vantage: "us"}} {
			st, err := store.Open(w.ctx, w.url, 2)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			g := &got{}
			results[in.ID] = g
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for {
					cs, err := st.ClaimWork(w.ctx, in.ID, in.Vantage, run.ID, n, lease)
					if err != nil {
						g.err = err
						return
					}
					if len(cs) == 0 {
						return
					}
					if len(cs) > n {
						g.err = fmt.Errorf("claimed %d rows, asked for at most %d", len(cs), n)
						return
					}
					for _, c := range cs {
						g.keys = append(g.keys, c.WorkKey)
					}
				}
			}()
		}
		close(start)
		wg.Wait()
		owner := map[store.WorkKey]string{}
		for id, g := range results {
			if g.err != nil {
				t.Fatalf("%s: %v", id, g.err)
			}
			if len(g.keys) == 0 {
				t.Logf("%s got no row (the other was faster every time)", id)
			}
			for _, k := range g.keys {
				if other, dup := owner[k]; dup {
					t.Errorf("row %v claimed by %s and by %s", k, other, id)
				}
				owner[k] = id
			}
		}
		if len(owner) != mirrors {
			t.Errorf("%d distinct rows claimed, want all %d", len(owner), mirrors)
		}
		// The database agrees: each row held once, by the one that got it.
		for k, id := range owner {
			if r := w.row(k.RunID, k.MirrorID); r.ClaimedBy != id || r.Claims != 1 {
				t.Errorf("row %v: claimed by %q %d times, want once by %s", k, r.ClaimedBy, r.Claims, id)
			}
		}
		t.Logf("a claimed %d rows, b %d", len(results["a"].keys), len(results["b"].keys))
	})

	t.Run("held until the lease runs out", func(t *testing.T) {
		w := newWorld(t, 1)
		w.instance("a", "eu", store.RoleDaemon)
		w.instance("b", "us", store.RoleDaemon)
		run := w.prime("a", "eu")
		m := w.mirrors[0]
		if c := w.claimOne("a", "eu", run.ID); c.Claims != 1 {
			t.Fatalf("first claim: %+v", c)
		}
		// Held: neither another instance nor the holder itself claims it again.
		if cs := w.claim("b", "us", run.ID, 10); len(cs) != 0 {
			t.Fatalf("b claimed a row a holds: %+v", cs)
		}
		if cs := w.claim("a", "eu", 0, 10); len(cs) != 0 {
			t.Fatalf("a claimed its own row again: %+v", cs)
		}
		w.expire(run.ID) // a was silent for a lease
		c := w.claimOne("b", "us", run.ID)
		if c.MirrorID != m || c.Claims != 2 {
			t.Errorf("takeover claim = %+v, want mirror %d claimed the 2nd time", c, m)
		}
		if r := w.row(run.ID, m); r.ClaimedBy != "b" || r.Claims != 2 {
			t.Errorf("row after takeover: %+v", r)
		}
		// Now b holds it, under a lease of its own.
		if cs := w.claim("a", "eu", run.ID, 10); len(cs) != 0 {
			t.Errorf("a claimed the row b took over: %+v", cs)
		}
	})
}

// 3. CompleteWork and Heartbeat after a takeover: the old holder writes
// nothing and no longer sees the row; the new holder completes it.
func TestCompleteWorkAndHeartbeatAfterTakeover(t *testing.T) {
	w := newWorld(t, 3)
	m1, m2, m3 := w.mirrors[0], w.mirrors[1], w.mirrors[2]
	w.instance("a", "eu", store.RoleDaemon)
	w.instance("b", "us", store.RoleDaemon)
	run, claims, err := w.st.CreateRun(w.ctx, store.NewRun{Kind: store.RunSweep, Vantage: "eu", Instance: "a",
		Mirrors: w.mirrors, Reach: true, Lease: lease, Claim: 3}, nil)
	if err != nil || len(claims) != 3 {
		t.Fatalf("CreateRun: %d claims, %v", len(claims), err)
	}
	// Heartbeat answers exactly the rows held, and renews their leases:
	// leases that ran out but were renewed in time are not taken over.
	if got, want := w.heartbeat("a"), keys(run.ID, m1, m2, m3); !slices.Equal(got, want) {
		t.Fatalf("heartbeat a = %v, want %v", got, want)
	}
	if got := w.heartbeat("b"); len(got) != 0 {
		t.Fatalf("heartbeat b = %v, want nothing", got)
	}
	w.expire(run.ID)
	w.heartbeat("a")
	if cs := w.claim("b", "us", run.ID, 10); len(cs) != 0 {
		t.Fatalf("b took over rows whose lease a had renewed: %+v", cs)
	}

	// a falls silent on m1 for a lease; b takes it over.
	w.expire(run.ID, m1)
	c := w.claimOne("b", "us", run.ID)
	if c.MirrorID != m1 || c.Claims != 2 || !c.Reach || !c.Files {
		t.Fatalf("takeover = %+v", c)
	}
	if got, want := w.heartbeat("a"), keys(run.ID, m2, m3); !slices.Equal(got, want) {
		t.Errorf("heartbeat a after takeover = %v, want %v", got, want)
	}
	if got, want := w.heartbeat("b"), keys(run.ID, m1); !slices.Equal(got, want) {
		t.Errorf("heartbeat b = %v, want %v", got, want)
	}

	// The old holder's late word on m1 is dropped whole.
	before := w.row(run.ID, m1)
	if w.complete(store.WorkDone{WorkKey: c.WorkKey, Instance: "a", Vantage: "eu",
		Verdict: "down from a", Unreachable: true, Result: "a's files"}) {
		t.Error("CompleteWork by the old holder = true, want false")
	}
	if after := w.row(run.ID, m1); !slices.Equal(after.Needs, before.Needs) || len(after.NotFrom) != 0 ||
		after.Verdicts != "{}" || after.Result != "" || after.FilesDone || after.ClaimedBy != "b" || !after.Leased {
		t.Errorf("old holder's CompleteWork wrote: %+v", after)
	}
	// The holder's is recorded.
	if !w.complete(store.WorkDone{WorkKey: c.WorkKey, Instance: "b", Vantage: "us", Verdict: "up from b", Result: "b's files"}) {
		t.Fatal("CompleteWork by the holder = false")
	}
	r := w.row(run.ID, m1)
	if !slices.Equal(r.Needs, []string{"eu"}) || !r.FilesDone || r.DoneBy != "b" || r.Result != `"b's files"` ||
		r.Verdicts != `{"us": "up from b"}` || r.ClaimedBy != "" || r.Leased || r.Done {
		t.Errorf("row after b's CompleteWork: %+v", r)
	}
	// Given back, the row is b's no more: completing it again does nothing.
	if w.complete(store.WorkDone{WorkKey: c.WorkKey, Instance: "b", Vantage: "us", Result: "again"}) {
		t.Error("second CompleteWork by b = true")
	}
	// a completes m2: its heartbeat now holds m3 only.
	if !w.complete(store.WorkDone{WorkKey: store.WorkKey{RunID: run.ID, MirrorID: m2}, Instance: "a", Vantage: "eu", Result: "ok"}) {
		t.Fatal("CompleteWork by a of m2 = false")
	}
	if got, want := w.heartbeat("a"), keys(run.ID, m3); !slices.Equal(got, want) {
		t.Errorf("heartbeat a after completing m2 = %v, want %v", got, want)
	}
}

// 4. Settling a row of a sweep worked from vantage points a and b: it is
// done when each removed itself from needs and the files are done, or when
// the mirror was unreachable from both. A vantage point the mirror was
// unreachable from does not get it for files; one with needs left gets it
// for reachability only once the files are done.
func TestSettling(t *testing.T) {
	w := newWorld(t, 1)
	w.instance("A", "a", store.RoleDaemon)
	w.instance("B", "b", store.RoleDaemon)
	ids := map[string]string{"a": "A", "b": "B"}

	// What a claim is for ("" when the vantage point must find nothing to
	// claim), and what the vantage point then reports.
	const (
		reachFiles = "reach+files"
		reachOnly  = "reach"
		filesOnly  = "files"

		up      = "up"       // reachable: a verdict only
		upFiles = "up+files" // reachable, and the files done
		down    = "down"     // unreachable (Unreachable)
	)
	type step struct {
		vantage string
		claim   string
		did     string
		done    bool // the row after the step
	}
	for _, tc := range []struct {
		name    string
		steps   []step
		notFrom []string
		doneBy  string
	}{
		{"a does the files, then b reaches", []step{
			{"a", reachFiles, upFiles, false},
			{"b", reachOnly, up, true},
		}, nil, "A"},
		{"b does the files, then a reaches", []step{
			{"b", reachFiles, upFiles, false},
			{"a", reachOnly, up, true},
		}, nil, "B"},
		{"unreachable from a: b does the files", []step{
			{"a", reachFiles, down, false},
			{"a", "", "", false}, // not for the files: a cannot reach it
			{"b", reachFiles, upFiles, true},
		}, []string{"a"}, "B"},
		{"files by a, unreachable from b", []step{
			{"a", reachFiles, upFiles, false},
			{"b", reachOnly, down, true},
		}, []string{"b"}, "A"},
		{"unreachable from both", []step{
			{"a", reachFiles, down, false},
			{"b", reachFiles, down, true},
		}, []string{"a", "b"}, ""},
		{"reach checked everywhere, files left", []step{
			// a reaches it without doing the files (its checks of them
			// were cut short, say), b cannot reach it: no vantage point
			// needs it for reach, the files are left, and only a may do
			// them.
			{"a", reachFiles, up, false},
			{"b", reachFiles, down, false},
			{"b", "", "", false},
			{"a", filesOnly, upFiles, true},
		}, []string{"b"}, "A"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := w.with(t)
			run := w.sweep("A", "a")
			m := w.mirrors[0]
			if r := w.row(run.ID, m); !slices.Equal(r.Vantages, []string{"a", "b"}) {
				t.Fatalf("vantages %v, want [a b]", r.Vantages)
			}
			for i, s := range tc.steps {
				id := ids[s.vantage]
				cs := w.claim(id, s.vantage, run.ID, 1)
				if s.claim == "" {
					if len(cs) != 0 {
						t.Fatalf("step %d: %s claimed %+v, want nothing", i, s.vantage, cs[0])
					}
					continue
				}
				if len(cs) != 1 {
					t.Fatalf("step %d: %s claimed %d rows, want 1", i, s.vantage, len(cs))
				}
				c := cs[0]
				wantReach, wantFiles := s.claim != filesOnly, s.claim != reachOnly
				if c.Reach != wantReach || c.Files != wantFiles {
					t.Fatalf("step %d: %s claimed reach=%v files=%v, want %s", i, s.vantage, c.Reach, c.Files, s.claim)
				}
				d := store.WorkDone{WorkKey: c.WorkKey, Instance: id, Vantage: s.vantage}
				switch s.did {
				case up:
					d.Verdict = "up"
				case upFiles:
					d.Verdict, d.Result = "up", "files by "+s.vantage
				case down:
					d.Verdict, d.Unreachable = "down", true
				}
				if !w.complete(d) {
					t.Fatalf("step %d: CompleteWork = false", i)
				}
				if r := w.row(run.ID, m); r.Done != s.done {
					t.Fatalf("step %d (%s %s): done = %v, want %v; row %+v", i, s.vantage, s.did, r.Done, s.done, r)
				}
			}
			r := w.row(run.ID, m)
			if !slices.Equal(r.NotFrom, append([]string{}, tc.notFrom...)) || r.DoneBy != tc.doneBy || len(r.Needs) != 0 {
				t.Errorf("row at the end: %+v, want not_from %v, done by %q", r, tc.notFrom, tc.doneBy)
			}
			if st := w.status(run.ID); st.Open != 0 {
				t.Errorf("run has %d open rows", st.Open)
			}
			// Done is done: nobody claims it anymore.
			for v, id := range ids {
				if cs := w.claim(id, v, run.ID, 1); len(cs) != 0 {
					t.Errorf("%s claimed a done row: %+v", v, cs)
				}
			}
		})
	}
}

// 5. ForgetGoneVantages drops the vantage points of instances that stopped
// or died from the open rows of running runs, so that the run settles;
// StopInstance gives back the rows the instance held at once, a dead
// instance's only when their lease ran out.
func TestForgetGoneVantages(t *testing.T) {
	for _, tc := range []struct {
		name string
		gone func(w *world, id string)
		// atOnce: b's rows are free for a to claim as soon as b is gone.
		atOnce bool
	}{
		{"stopped", (*world).stop, true},
		{"silent", (*world).silence, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 3)
			m1, m2, m3 := w.mirrors[0], w.mirrors[1], w.mirrors[2]
			w.instance("A", "a", store.RoleDaemon)
			w.instance("B", "b", store.RoleDaemon)
			run := w.sweep("A", "a")
			forget := func() int {
				t.Helper()
				n, err := w.st.ForgetGoneVantages(w.ctx, lease)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			// B holds m1 and m2; A does m3, which then waits for b.
			if got := claimedKeys(w.claim("B", "b", run.ID, 2)); !slices.Equal(got, keys(run.ID, m1, m2)) {
				t.Fatalf("B claimed %v", got)
			}
			c := w.claimOne("A", "a", run.ID)
			if c.MirrorID != m3 || !w.complete(store.WorkDone{WorkKey: c.WorkKey, Instance: "A", Vantage: "a", Verdict: "up", Result: "ok"}) {
				t.Fatalf("A's claim %+v", c)
			}
			if r := w.row(run.ID, m3); r.Done || !slices.Equal(r.Needs, []string{"b"}) {
				t.Fatalf("m3 before b left: %+v", r)
			}
			// While B works, b is not forgotten.
			if n := forget(); n != 0 {
				t.Fatalf("ForgetGoneVantages with every instance working = %d, want 0", n)
			}

			tc.gone(w, "B")

			if !tc.atOnce {
				if cs := w.claim("A", "a", run.ID, 10); len(cs) != 0 {
					t.Fatalf("A claimed rows a silent B still leases: %+v", cs)
				}
				w.expire(run.ID)
			}
			got := w.claim("A", "a", run.ID, 10)
			if !slices.Equal(claimedKeys(got), keys(run.ID, m1, m2)) {
				t.Fatalf("A claimed %v after B left, want m1 and m2", claimedKeys(got))
			}
			for _, c := range got {
				if c.Claims != 2 {
					t.Errorf("%+v: want a second claim", c)
				}
			}
			// m3 is open and free: b is forgotten there and it settles.
			// m1 and m2 are held by A under a lease: left alone for now.
			if n := forget(); n != 1 {
				t.Errorf("ForgetGoneVantages = %d, want 1 (m3)", n)
			}
			if r := w.row(run.ID, m3); !r.Done || !slices.Equal(r.Vantages, []string{"a"}) || len(r.Needs) != 0 {
				t.Errorf("m3 after forgetting b: %+v", r)
			}
			if r := w.row(run.ID, m1); !slices.Equal(r.Vantages, []string{"a", "b"}) || r.ClaimedBy != "A" {
				t.Errorf("m1, held, was changed: %+v", r)
			}
			// A finishes m1 and m2; they wait for b until forgotten.
			for _, c := range got {
				if !w.complete(store.WorkDone{WorkKey: c.WorkKey, Instance: "A", Vantage: "a", Verdict: "up", Result: "ok"}) {
					t.Fatalf("A could not complete %+v", c.WorkKey)
				}
			}
			if st := w.status(run.ID); st.Open != 2 {
				t.Errorf("%d open rows, want 2 (m1 and m2 still need b)", st.Open)
			}
			if n := forget(); n != 2 {
				t.Errorf("ForgetGoneVantages = %d, want 2", n)
			}
			if st := w.status(run.ID); st.Open != 0 {
				t.Errorf("%d open rows after forgetting b, want 0", st.Open)
			}
			if n := forget(); n != 0 {
				t.Errorf("ForgetGoneVantages with nothing left = %d", n)
			}
		})
	}
}

// 6. Judging and ending runs: a run is judged once all its rows are done,
// by one instance at a time; a command judges its own run, a daemon those
// of daemons and of commands that stopped or died. EndRun ends a run once
// and closes its rows; RunsWithoutWorkers ends the runs nobody can work.
func TestJudgingAndEnding(t *testing.T) {
	t.Run("one judge, once the rows are done", func(t *testing.T) {
		w := newWorld(t, 2)
		w.instance("A", "a", store.RoleDaemon)
		w.instance("B", "b", store.RoleDaemon)
		run := w.prime("A", "a")
		c := w.claimOne("A", "a", run.ID)
		w.complete(store.WorkDone{WorkKey: c.WorkKey, Instance: "A", Vantage: "a", Result: "ok"})
		if got := w.judging("A", 0); len(got) != 0 {
			t.Fatalf("judged with a row open: %v", got)
		}
		w.finish("A", "a", run.ID)

		// A and B (processes of their own) race for it: one wins.
		var wg sync.WaitGroup
		got := map[string][]store.JudgeClaim{}
		var mu sync.Mutex
		start := make(chan struct{})
		for _, id := range []string{"A", "B"} {
			st, err := store.Open(w.ctx, w.url, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				js, err := st.ClaimJudging(w.ctx, id, 0, lease)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				got[id] = js
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
		judge, other := "A", "B"
		if len(got["B"]) > 0 {
			judge, other = "B", "A"
		}
		if len(got[judge]) != 1 || len(got[other]) != 0 || got[judge][0].ID != run.ID || got[judge][0].Kind != store.RunPrime {
			t.Fatalf("racing judges got %+v", got)
		}
		if ids := w.judging(other, 0); len(ids) != 0 {
			t.Errorf("%s judges run %v %s holds", other, ids, judge)
		}
		// The judge's heartbeat renews its lease on the run...
		w.exec(`UPDATE sentry_runs SET judge_until = now() - interval '1s' WHERE id = $1`, run.ID)
		w.heartbeat(judge)
		if ids := w.judging(other, 0); len(ids) != 0 {
			t.Errorf("%s took over a judging lease %s renewed: %v", other, judge, ids)
		}
		// ...and once it ran out, the other takes over.
		w.exec(`UPDATE sentry_runs SET judge_until = now() - interval '1s' WHERE id = $1`, run.ID)
		if ids := w.judging(other, 0); !slices.Equal(ids, []int64{run.ID}) {
			t.Errorf("%s after %s's judging lease ran out: %v", other, judge, ids)
		}
	})

	t.Run("who judges", func(t *testing.T) {
		w := newWorld(t, 1)
		w.instance("D", "a", store.RoleDaemon)
		w.instance("D2", "a", store.RoleDaemon)
		w.instance("C", "b", store.RoleCommand)
		w.instance("E", "c", store.RoleCommand)
		byDaemon := w.prime("D2", "a")
		byCommand := w.prime("C", "b")
		w.finish("D2", "a", byDaemon.ID)
		w.finish("C", "b", byCommand.ID)
		// Another command judges neither the run of a live command...
		if ids := w.judging("E", byCommand.ID); len(ids) != 0 {
			t.Errorf("command E judges C's run: %v", ids)
		}
		// ...nor does a daemon: D gets only the daemon's run.
		if ids := w.judging("D", 0); !slices.Equal(ids, []int64{byDaemon.ID}) {
			t.Errorf("daemon D judges %v, want only run %d", ids, byDaemon.ID)
		}
		// A command judges its own run (it asks for it by id).
		if ids := w.judging("C", byCommand.ID); !slices.Equal(ids, []int64{byCommand.ID}) {
			t.Errorf("command C judges %v, want its run %d", ids, byCommand.ID)
		}

		for _, tc := range []struct {
			name string
			gone func(w *world, id string)
			want bool // a daemon judges the command's run
		}{
			{"live command", func(*world, string) {}, false},
			{"stopped command", (*world).stop, true},
			{"dead command", (*world).silence, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				w := w.with(t)
				id := "cmd-" + tc.name
				w.instance(id, "z", store.RoleCommand)
				run := w.prime(id, "z")
				w.finish(id, "z", run.ID)
				tc.gone(w, id)
				var want []int64
				if tc.want {
					want = []int64{run.ID}
				}
				if got := w.judging("D", run.ID); !slices.Equal(got, want) {
					t.Errorf("daemon judges %v, want %v", got, want)
				}
			})
		}

		t.Run("a command stopping while judging", func(t *testing.T) {
			w := w.with(t)
			w.instance("F", "f", store.RoleCommand)
			run := w.prime("F", "f")
			w.finish("F", "f", run.ID)
			if got := w.judging("F", run.ID); len(got) != 1 {
				t.Fatalf("F judges %v", got)
			}
			w.stop("F") // gives back its judging lease at once
			if got := w.judging("D", run.ID); !slices.Equal(got, []int64{run.ID}) {
				t.Errorf("daemon judges %v after F stopped, want %d", got, run.ID)
			}
		})
	})

	t.Run("EndRun once", func(t *testing.T) {
		w := newWorld(t, 3)
		m1, m2 := w.mirrors[0], w.mirrors[1]
		w.instance("A", "a", store.RoleDaemon)
		run := w.prime("A", "a")
		cs := w.claim("A", "a", run.ID, 2)
		if !slices.Equal(claimedKeys(cs), keys(run.ID, m1, m2)) {
			t.Fatalf("claimed %v", claimedKeys(cs))
		}
		w.complete(store.WorkDone{WorkKey: cs[0].WorkKey, Instance: "A", Vantage: "a", Result: "ok"})
		// m2 held, m3 never claimed.
		end := func(outcome, reason string) bool {
			t.Helper()
			ok, err := w.st.EndRun(w.ctx, run.ID, outcome, reason)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !end(store.OutcomeFailed, "first") {
			t.Fatal("first EndRun = false")
		}
		if end(store.OutcomeCompleted, "second") {
			t.Error("second EndRun = true")
		}
		st := w.status(run.ID)
		if st.Outcome != store.OutcomeFailed || st.Reason != "first" || !st.Finished || st.Open != 0 || st.Total != 3 {
			t.Errorf("status after EndRun: %+v", st)
		}
		for _, m := range w.mirrors {
			if r := w.row(run.ID, m); !r.Done || r.ClaimedBy != "" || r.Leased {
				t.Errorf("mirror %d after EndRun: %+v", m, r)
			}
		}
		// The closed rows are nobody's anymore.
		if w.complete(store.WorkDone{WorkKey: store.WorkKey{RunID: run.ID, MirrorID: m2}, Instance: "A", Vantage: "a", Result: "late"}) {
			t.Error("CompleteWork on an ended run = true")
		}
		if got := w.heartbeat("A"); len(got) != 0 {
			t.Errorf("heartbeat after EndRun holds %v", got)
		}
		if cs := w.claim("A", "a", 0, 10); len(cs) != 0 {
			t.Errorf("claimed rows of an ended run: %+v", cs)
		}
		if ids := w.judging("A", 0); len(ids) != 0 {
			t.Errorf("judges an ended run: %v", ids)
		}
	})

	t.Run("RunsWithoutWorkers", func(t *testing.T) {
		w := newWorld(t, 2)
		without := func() int {
			t.Helper()
			n, err := w.st.RunsWithoutWorkers(w.ctx, lease)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		w.instance("D", "a", store.RoleDaemon)
		w.instance("C", "b", store.RoleCommand)
		w.instance("E", "c", store.RoleCommand)
		byDaemon := w.sweep("D", "a")
		byC := w.prime("C", "b")
		byE := w.prime("E", "c")
		legacy, err := w.st.StartRun(w.ctx, store.RunSweep, 0, "a") // not a shared run: no instance
		if err != nil {
			t.Fatal(err)
		}
		w.claim("D", "a", byDaemon.ID, 1) // a row held when its holder dies
		if n := without(); n != 0 {
			t.Fatalf("RunsWithoutWorkers with everyone working = %d", n)
		}
		w.silence("D") // the only daemon dies
		w.stop("C")    // C stops; E still works its run
		if n := without(); n != 2 {
			t.Errorf("RunsWithoutWorkers = %d, want 2 (D's and C's runs)", n)
		}
		for _, tc := range []struct {
			run  int64
			want string
			open int
		}{
			{byDaemon.ID, store.OutcomeInterrupted, 0},
			{byC.ID, store.OutcomeInterrupted, 0},
			{byE.ID, store.OutcomeRunning, 2},
			{legacy.ID, store.OutcomeRunning, 0},
		} {
			st := w.status(tc.run)
			if st.Outcome != tc.want || st.Open != tc.open || st.Finished != (tc.want != store.OutcomeRunning) {
				t.Errorf("run %d: %+v, want %s with %d open rows", tc.run, st, tc.want, tc.open)
			}
		}
		if r := w.row(byDaemon.ID, w.mirrors[0]); r.ClaimedBy != "" || r.Leased {
			t.Errorf("dead D's row still held: %+v", r)
		}
		// A live daemon can work any run: the run of a command that
		// stopped goes on.
		w.instance("D3", "a", store.RoleDaemon)
		w.instance("G", "g", store.RoleCommand)
		byG := w.prime("G", "g")
		w.stop("G")
		if n := without(); n != 0 {
			t.Errorf("RunsWithoutWorkers with a live daemon = %d", n)
		}
		if st := w.status(byG.ID); st.Outcome != store.OutcomeRunning {
			t.Errorf("G's run: %+v", st)
		}
	})
}
