package sweep_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestSweepHysteresis(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	w.Static(t, "good1")
	w.Static(t, "good2")
	flaky, id := w.Static(t, "flaky")
	down := world.Failing(flaky)
	w.Prime(t)

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
		rep := w.Sweep(t, false)
		if rep.Outcome != store.OutcomeCompleted {
			t.Fatalf("sweep %d: outcome %s: %s", i+1, rep.Outcome, rep.Reason)
		}
		s := world.SweepSums(t, rep, "flaky")
		if s.State != st.wantState || s.StateChanged != st.wantChange || s.SweepFailed != st.fail {
			t.Errorf("sweep %d: %+v; want state %s changed=%v", i+1, s, st.wantState, st.wantChange)
		}
		marks := w.Marks(t)
		for _, loc := range []int{w.LocWin, w.LocLin} {
			// active stays as the prime left it: transient trouble never
			// takes a file away.
			if got := marks[loc][id]; got != (world.Mark{Active: true, Healthy: st.healthy}) {
				t.Errorf("sweep %d, location %d: %+v, want active and healthy=%v", i+1, loc, got, st.healthy)
			}
		}
	}
	rows, err := w.Pool().Query(context.Background(), `SELECT from_state, to_state, reason FROM sentry_state_changes
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
	t.Parallel()
	w := world.New(t, nil)
	w.Static(t, "good")
	lossy, id := w.Static(t, "lossy")
	w.Prime(t)
	lossy.Remove(w.Rel, "linux-x86_64/de/firefox-1.5.tar.bz2")
	rep := w.Sweep(t, false)
	s := world.SweepSums(t, rep, "lossy")
	if s.State != "up" || s.Failures["not_found"] != 1 || s.Unchanged != 3 {
		t.Errorf("sweep: %+v", s)
	}
	marks := w.Marks(t)
	if marks[w.LocLin][id] != world.Off {
		t.Errorf("location with a missing file: %+v, want inactive at once", marks[w.LocLin][id])
	}
	if marks[w.LocWin][id] != world.Good {
		t.Errorf("intact location: %+v", marks[w.LocWin][id])
	}
	// The conditional requests were answered 304 and counted so, without
	// a row each (they found what was known); the missing file has one.
	var unchanged, rows, missingRows int
	if err := w.Pool().QueryRow(context.Background(), `SELECT
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
	t.Parallel()
	w := world.New(t, nil)
	w.Static(t, "good")
	tamper, id := w.Static(t, "tamper")
	w.Prime(t)
	p := "win32/en-US/Firefox Setup 1.5.exe"
	tamper.Put(w.Rel, p, localmirror.Flip(w.Rel.Files[p]))

	light := w.Sweep(t, false)
	if s := world.SweepSums(t, light, "tamper"); s.Failures["checksum_mismatch"] != 1 || s.Hashed != 1 {
		t.Fatalf("light sweep: %+v; want the changed file hashed, and only it", s)
	}
	if got := w.Marks(t)[w.LocWin][id]; got != world.Off {
		t.Errorf("location with the corrupt file: %+v, want taken off by the light sweep", got)
	}
	// The wrong body is known: the next light sweep does not fetch it
	// again while the mirror leaves it as it is.
	again := w.Sweep(t, false)
	if s := world.SweepSums(t, again, "tamper"); s.Hashed != 0 {
		t.Errorf("second light sweep hashed %d files: %+v, want none (nothing changed)", s.Hashed, s)
	}
	if got := w.Marks(t)[w.LocWin][id]; got != world.Off {
		t.Errorf("location with the corrupt file: %+v after a HEAD, want still off", got)
	}
	// Fixed by the admin: hashed at once, offered again.
	tamper.Put(w.Rel, p, w.Rel.Files[p])
	fixed := w.Sweep(t, false)
	if s := world.SweepSums(t, fixed, "tamper"); s.Hashed != 1 || s.Failed != 0 {
		t.Errorf("light sweep after the fix: %+v, want the file hashed right", s)
	}
	if got := w.Marks(t)[w.LocWin][id]; got != world.Good {
		t.Errorf("location with the fixed file: %+v, want offered again", got)
	}
}

func TestSweepKilledDatabaseConnectionLosesNoCheck(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	s1, _ := w.Static(t, "m1")
	w.Static(t, "m2")
	w.Prime(t)
	counted := func() int {
		t.Helper()
		var n int
		if err := w.Pool().QueryRow(context.Background(), `SELECT coalesce(sum(n), 0) FROM sentry_check_hourly`).Scan(&n); err != nil {
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
		before, logged := counted(), w.Logs.Len()
		killed.Store(0)
		armed.Store(1)
		rep := w.Sweep(t, false)
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
		if strings.Contains(w.Logs.String()[logged:], "writing checks failed; keeping them and retrying") {
			return
		}
		if try == tries {
			t.Fatalf("in %d tries no check write failed: the kills missed the recorder's connections", tries)
		}
	}
}
