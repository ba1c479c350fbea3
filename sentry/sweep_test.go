package sentry_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/store"
	"github.com/mirrorsentry/sentry/sentry/sweep"
)

func sweepNow(t *testing.T, d *sentry.Deps, deep bool) *sweep.Report {
	t.Helper()
	rep, err := sentry.Sweep(context.Background(), d, sentry.SweepOptions{Deep: deep})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func sweepSums(t *testing.T, rep *sweep.Report, name string) sweep.MirrorSums {
	t.Helper()
	for _, m := range rep.Mirrors {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("mirror %s not in sweep report", name)
	return sweep.MirrorSums{}
}

// failing makes s answer 503 to everything while on is set.
func failing(s *localmirror.Server) *atomic.Bool {
	var on atomic.Bool
	s.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		if !on.Load() {
			return false
		}
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return true
	})
	return &on
}

func TestSweepHysteresis(t *testing.T) {
	d, b := setup(t)
	b.static(t, "good1")
	b.static(t, "good2")
	flaky, id := b.static(t, "flaky")
	down := failing(flaky)
	primeRelease(t, d)

	steps := []struct {
		fail       bool
		wantState  string
		wantChange bool
		healthy    bool
	}{
		{fail: true, wantState: "up", healthy: true},                      // one failure: stays up
		{fail: true, wantState: "down", wantChange: true, healthy: false}, // two: down
		{fail: false, wantState: "down", healthy: false},                  // one good sweep: still down
		{fail: false, wantState: "up", wantChange: true, healthy: true},   // two: up again
	}
	for i, st := range steps {
		down.Store(st.fail)
		rep := sweepNow(t, d, false)
		if rep.Outcome != store.OutcomeCompleted {
			t.Fatalf("sweep %d: outcome %s: %s", i+1, rep.Outcome, rep.Reason)
		}
		s := sweepSums(t, rep, "flaky")
		if s.State != st.wantState || s.StateChanged != st.wantChange || s.SweepFailed != st.fail {
			t.Errorf("sweep %d: %+v; want state %s changed=%v", i+1, s, st.wantState, st.wantChange)
		}
		marks := b.marks(t)
		for _, loc := range []int{b.locWin, b.locLin} {
			// active stays as the prime left it: transient trouble never
			// takes a file away.
			if got := marks[loc][id]; got != (lmmRow{Active: true, Healthy: st.healthy}) {
				t.Errorf("sweep %d, location %d: %+v, want active and healthy=%v", i+1, loc, got, st.healthy)
			}
		}
	}
	rows, err := b.st.Pool().Query(context.Background(), `SELECT from_state, to_state, reason FROM sentry_state_changes
		WHERE mirror_id = $1 ORDER BY id`, id)
	if err != nil {
		t.Fatal(err)
	}
	type change struct{ From, To, Reason string }
	changes, err := pgx.CollectRows(rows, pgx.RowToStructByPos[change])
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || changes[0].To != "down" || changes[1].To != "up" ||
		!strings.Contains(changes[0].Reason, "down after 2 failed sweeps") || !strings.Contains(changes[0].Reason, "http_status") ||
		!strings.Contains(changes[1].Reason, "up after 2 good sweeps") {
		t.Errorf("state changes: %+v", changes)
	}
}

func TestSweepDefinitiveFactActsAtOnceAndUnchangedIsCounted(t *testing.T) {
	d, b := setup(t)
	b.static(t, "good")
	lossy, id := b.static(t, "lossy")
	primeRelease(t, d)
	lossy.Remove(b.rel, "linux-x86_64/de/firefox-1.5.tar.bz2")
	rep := sweepNow(t, d, false)
	s := sweepSums(t, rep, "lossy")
	if s.State != "up" || s.Failures["not_found"] != 1 || s.Unchanged != 3 {
		t.Errorf("sweep: %+v", s)
	}
	marks := b.marks(t)
	if marks[b.locLin][id] != (lmmRow{false, false}) {
		t.Errorf("location with a missing file: %+v, want inactive at once", marks[b.locLin][id])
	}
	if marks[b.locWin][id] != (lmmRow{true, true}) {
		t.Errorf("intact location: %+v", marks[b.locWin][id])
	}
	// The conditional requests were answered 304 and counted so, without
	// a row each (they found what was known); the missing file has one.
	var unchanged, rows, missingRows int
	if err := b.st.Pool().QueryRow(context.Background(), `SELECT
			(SELECT coalesce(sum(n), 0) FROM sentry_check_hourly WHERE result = 'unchanged'),
			(SELECT count(*) FROM sentry_checks WHERE run_id = $1),
			(SELECT count(*) FROM sentry_checks WHERE run_id = $1 AND result = 'not_found')`,
		rep.RunID).Scan(&unchanged, &rows, &missingRows); err != nil {
		t.Fatal(err)
	}
	if unchanged != 7 || rows != 1 || missingRows != 1 { // 4 files on good, 3 on lossy; a row for the missing one
		t.Errorf("%d unchanged checks counted, %d rows (%d of the missing file); want 7, 1, 1", unchanged, rows, missingRows)
	}
}

// TestSweepHashesAFileTheMirrorChanged: a file whose validators changed
// (same size, other bytes: a HEAD sees only the new ETag) is hashed by the
// light sweep that sees the change, not left to the next deep sweep.
func TestSweepHashesAFileTheMirrorChanged(t *testing.T) {
	d, b := setup(t)
	b.static(t, "good")
	tamper, id := b.static(t, "tamper")
	primeRelease(t, d)
	p := "win32/en-US/Firefox Setup 1.5.exe"
	tamper.Put(b.rel, p, localmirror.Flip(b.rel.Files[p]))

	light := sweepNow(t, d, false)
	if s := sweepSums(t, light, "tamper"); s.Failures["checksum_mismatch"] != 1 || s.Hashed != 1 {
		t.Fatalf("light sweep: %+v; want the changed file hashed, and only it", s)
	}
	if got := b.marks(t)[b.locWin][id]; got != (lmmRow{false, false}) {
		t.Errorf("location with the corrupt file: %+v, want taken off by the light sweep", got)
	}
	// The wrong body is known: the next light sweep does not fetch it
	// again while the mirror leaves it as it is.
	again := sweepNow(t, d, false)
	if s := sweepSums(t, again, "tamper"); s.Hashed != 0 {
		t.Errorf("second light sweep hashed %d files: %+v, want none (nothing changed)", s.Hashed, s)
	}
	if got := b.marks(t)[b.locWin][id]; got != (lmmRow{false, false}) {
		t.Errorf("location with the corrupt file: %+v after a HEAD, want still off", got)
	}
	// Fixed by the admin: hashed at once, offered again.
	tamper.Put(b.rel, p, b.rel.Files[p])
	fixed := sweepNow(t, d, false)
	if s := sweepSums(t, fixed, "tamper"); s.Hashed != 1 || s.Failed != 0 {
		t.Errorf("light sweep after the fix: %+v, want the file hashed right", s)
	}
	if got := b.marks(t)[b.locWin][id]; got != (lmmRow{true, true}) {
		t.Errorf("location with the fixed file: %+v, want offered again", got)
	}
}

func TestDeepSweepCoversEveryPairWithinPeriod(t *testing.T) {
	d, b := setup(t)
	b.static(t, "m1")
	b.static(t, "m2")
	primeRelease(t, d)
	var clock atomic.Int64
	start := time.Now()
	d.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	period := d.Config.Sweep.DeepPeriod.D()
	if period != 7*24*time.Hour || d.Config.Schedule.DeepSweep != "0 3 * * *" {
		t.Fatalf("test assumes the defaults: period %s, deep schedule %q", period, d.Config.Schedule.DeepSweep)
	}
	// Two simulated periods of nightly deep sweeps.
	for day := 1; day <= 14; day++ {
		clock.Store(start.Add(time.Duration(day) * 24 * time.Hour).UnixNano())
		rep := sweepNow(t, d, true)
		for _, m := range rep.Mirrors {
			// 4 files over 7 nights: one a night is the derived share.
			if m.Hashed < 1 || m.Hashed > 2 {
				t.Errorf("day %d, %s: hashed %d, want the share of 1 (2 at most when a pair falls due)", day, m.Name, m.Hashed)
			}
		}
	}
	// Every pair's hashes, the prime's included, are at most a period apart.
	rows, err := b.st.Pool().Query(context.Background(), `
		SELECT mirror_id, path, max(gap) FROM (
			SELECT mirror_id, path, checked_at - lag(checked_at) OVER (PARTITION BY mirror_id, path ORDER BY checked_at) AS gap
			FROM sentry_checks WHERE hashed AND result = 'ok' AND path <> '') g
		GROUP BY mirror_id, path`)
	if err != nil {
		t.Fatal(err)
	}
	type pair struct {
		Mirror int
		Path   string
		Gap    *time.Duration
	}
	pairs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[pair])
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 8 {
		t.Fatalf("%d pairs hashed, want 8", len(pairs))
	}
	for _, p := range pairs {
		if p.Gap == nil || *p.Gap > period {
			t.Errorf("mirror %d %s: longest time between hashes %v, want at most %s", p.Mirror, p.Path, p.Gap, period)
		}
	}
	// And the last hash of every pair is recent: none is left behind.
	var stale int
	if err := b.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM sentry_file_state WHERE hashed_at < $1`,
		start.Add(7*24*time.Hour)).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	if stale != 0 {
		t.Errorf("%d pairs not hashed in the second period", stale)
	}
}

func TestSweepGuardHoldsBackMassFailure(t *testing.T) {
	d, b := setup(t)
	_, good := b.static(t, "good")
	var ids []int
	var toggles []*atomic.Bool
	for _, name := range []string{"a", "b"} {
		s, id := b.static(t, name)
		toggles = append(toggles, failing(s))
		ids = append(ids, id)
	}
	primeRelease(t, d)
	for _, tg := range toggles {
		tg.Store(true)
	}
	for i := 0; i < 3; i++ {
		rep := sweepNow(t, d, false)
		if rep.Outcome != store.OutcomeGuarded || !strings.Contains(rep.Reason, "2 of 3 mirrors") {
			t.Fatalf("sweep %d: outcome %s: %s", i+1, rep.Outcome, rep.Reason)
		}
	}
	marks := b.marks(t)
	for _, id := range append(ids, good) {
		if marks[b.locWin][id] != (lmmRow{true, true}) {
			t.Errorf("mirror %d marked down under the guard: %+v", id, marks[b.locWin][id])
		}
	}
	var streak int
	if err := b.st.Pool().QueryRow(context.Background(), `SELECT max(fail_streak) FROM sentry_mirror_state`).Scan(&streak); err != nil {
		t.Fatal(err)
	}
	if streak != 0 {
		t.Errorf("guarded failures counted towards hysteresis: fail streak %d", streak)
	}
}

func TestSweepKilledDatabaseConnectionLosesNoCheck(t *testing.T) {
	d, b := setup(t)
	s1, _ := b.static(t, "m1")
	b.static(t, "m2")
	primeRelease(t, d)
	counted := func() int {
		t.Helper()
		var n int
		if err := b.st.Pool().QueryRow(context.Background(), `SELECT coalesce(sum(n), 0) FROM sentry_check_hourly`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Mid-sweep, every connection to the database is killed: the pool's
	// and whatever the recorder holds, at every HEAD from the third on.
	// Whether a write of the recorder meets a killed connection depends on
	// timing (the pool pings connections idle for a second or more before
	// use, which a loaded machine can make of any), so the sweep is tried
	// until one did, a few times at most; every try must lose no check.
	dbURL := d.Config.Database.URL
	var killed, armed atomic.Int64
	s1.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodHead && armed.Load() == 1 && killed.Add(1) >= 3 {
			conn, err := pgx.Connect(r.Context(), dbURL)
			if err == nil {
				_, _ = conn.Exec(r.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
					WHERE datname = current_database() AND pid <> pg_backend_pid()`)
				conn.Close(r.Context())
			}
		}
		return false
	})
	const tries = 5
	for try := 1; ; try++ {
		before, logged := counted(), b.logs.Len()
		killed.Store(0)
		armed.Store(1)
		rep := sweepNow(t, d, false)
		armed.Store(0)
		if rep.Outcome != store.OutcomeCompleted {
			t.Fatalf("try %d: outcome %s: %s", try, rep.Outcome, rep.Reason)
		}
		if n, want := counted()-before, 2*(1+4); n != want { // per mirror: reachability + 4 files
			t.Fatalf("try %d: %d checks counted, want %d", try, n, want)
		}
		if killed.Load() < 3 {
			t.Fatalf("try %d: the connections were never killed (%d HEADs)", try, killed.Load())
		}
		// A try is only worth something if a write did fail and was
		// retried.
		if strings.Contains(b.logs.String()[logged:], "writing checks failed; keeping them and retrying") {
			return
		}
		if try == tries {
			t.Fatalf("in %d tries no check write failed: the kills missed the recorder's connections", tries)
		}
	}
}

// eventCounter counts what observers are told.
type eventCounter struct {
	mu      sync.Mutex
	changes []observe.StateChangeEvent
	ends    []observe.RunEvent
}

func (c *eventCounter) CheckDone(observe.CheckEvent) {}
func (c *eventCounter) GuardHeld(observe.GuardEvent) {}
func (c *eventCounter) StateChanged(e observe.StateChangeEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes = append(c.changes, e)
}
func (c *eventCounter) RunFinished(e observe.RunEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ends = append(c.ends, e)
}

// TestRejudgedSweepAnnouncesOnce: a sweep whose judgement failed after it
// had marked the mirrors (its end refused once by the database) is judged
// again; the mirrors' states are not counted twice, and neither a state
// change nor the run's end is announced twice.
func TestRejudgedSweepAnnouncesOnce(t *testing.T) {
	d, b := setup(t)
	b.static(t, "good")
	dead, _ := b.static(t, "dead")
	primeRelease(t, d)
	failing(dead).Store(true)
	d.Config.State.DownAfter = 1
	d.Config.Cluster.Poll = config.Duration(100 * time.Millisecond)
	counter := &eventCounter{}
	d.Observer = counter
	ctx := context.Background()
	// The first end of a sweep is refused: the judgement fails after
	// writing every mirror's marks and state.
	if _, err := b.st.Pool().Exec(ctx, `
		CREATE SEQUENCE refuse_once;
		CREATE FUNCTION refuse_first_end() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF OLD.outcome = 'running' AND NEW.outcome <> 'running' AND NEW.kind = 'sweep' AND nextval('refuse_once') = 1 THEN
				RAISE EXCEPTION 'the test refuses the first end of a sweep';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_first_end BEFORE UPDATE ON sentry_runs FOR EACH ROW EXECUTE FUNCTION refuse_first_end();`); err != nil {
		t.Fatal(err)
	}
	rep := sweepNow(t, d, false)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("outcome %s %q", rep.Outcome, rep.Reason)
	}
	var attempts int
	if err := b.st.Pool().QueryRow(ctx, `SELECT judge_attempts FROM sentry_runs WHERE id = $1`, rep.RunID).Scan(&attempts); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 {
		t.Fatalf("%d failed judgements, want 1 (the trigger did not refuse the end?)", attempts)
	}
	if s := sweepSums(t, rep, "dead"); s.State != store.StateDown {
		t.Errorf("dead: %+v, want down", s)
	}
	var streak, changes int
	if err := b.st.Pool().QueryRow(ctx, `SELECT fail_streak, (SELECT count(*) FROM sentry_state_changes)
		FROM sentry_mirror_state ms JOIN mirror_mirrors m ON m.id = ms.mirror_id WHERE m.name = 'dead'`).Scan(&streak, &changes); err != nil {
		t.Fatal(err)
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	if streak != 1 || changes != 1 || len(counter.changes) != 1 {
		t.Errorf("fail streak %d, %d state changes recorded, %d announced; want 1, 1, 1", streak, changes, len(counter.changes))
	}
	ends := 0
	for _, e := range counter.ends {
		if e.RunID == rep.RunID {
			ends++
		}
	}
	if ends != 1 {
		t.Errorf("the sweep's end announced %d times, want once", ends)
	}
}

// TestPerMirrorRateHolds: the requests a mirror sees are paced by its own
// cap (sentry_mirror_settings.max_rate) or, without one, by
// checks.per_mirror_rate, over any second, retries included; a prime and
// a sweep of the mirror at once share it (one row holds a mirror at a
// time).
func TestPerMirrorRateHolds(t *testing.T) {
	d, b := setup(t)
	d.Config.Checks.PerMirrorRate = 8
	d.Config.Checks.PerMirrorConcurrency = 4
	own, ownID := b.static(t, "own-cap")
	dflt, _ := b.static(t, "default-cap")
	if _, err := b.st.Pool().Exec(context.Background(), `INSERT INTO sentry_mirror_settings (mirror_id, max_rate) VALUES ($1, 4)`, ownID); err != nil {
		t.Fatal(err)
	}
	type arrivals struct {
		mu sync.Mutex
		at []time.Time
	}
	seen := map[string]*arrivals{}
	for _, m := range []*localmirror.Server{own, dflt} {
		a := &arrivals{}
		seen[m.Name] = a
		m.HandleFunc(func(http.ResponseWriter, *http.Request) bool {
			a.mu.Lock()
			a.at = append(a.at, time.Now())
			a.mu.Unlock()
			return false
		})
	}
	primeRelease(t, d)
	sweepNow(t, d, false)
	for name, limit := range map[string]int{"own-cap": 4, "default-cap": 8} {
		a := seen[name]
		a.mu.Lock()
		at := slices.Clone(a.at)
		a.mu.Unlock()
		slices.SortFunc(at, func(x, y time.Time) int { return x.Compare(y) })
		if len(at) <= limit+1 {
			t.Fatalf("%s saw %d requests: too few to see a pace of %d a second", name, len(at), limit)
		}
		most := 0
		for i := range at {
			n := 0
			for j := i; j < len(at) && at[j].Sub(at[i]) < time.Second; j++ {
				n++
			}
			most = max(most, n)
		}
		// A limiter of r a second with a burst of one lets r+1 requests
		// fall within one second (at its two ends).
		if most > limit+1 {
			t.Errorf("%s saw %d requests within one second, want at most %d (a cap of %d a second)", name, most, limit+1, limit)
		}
	}
}
