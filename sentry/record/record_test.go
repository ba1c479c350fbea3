package record_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/sentry/record"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// setup opens a migrated Store with one run and returns its id.
func setup(t *testing.T) (*store.Store, int64) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, pgtest.NewDB(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var run int64
	if err := st.Pool().QueryRow(ctx, `INSERT INTO sentry_runs (kind, vantage, host, pid) VALUES ('sweep', 'test', 'test', 1)
		RETURNING id`).Scan(&run); err != nil {
		t.Fatal(err)
	}
	return st, run
}

func someChecks(run int64, n int) []store.Check {
	out := make([]store.Check, n)
	for i := range out {
		out[i] = store.Check{RunID: run, MirrorID: 1, Path: "", CheckedAt: time.Now(), Vantage: "test",
			Method: "HEAD", Result: "ok", Bytes: -1, Size: -1}
	}
	return out
}

// TestRecorderKeepsChecksWhileDatabaseIsAway stops PostgreSQL while checks
// come in: they wait, bounded, and are all written once it is back.
func TestRecorderKeepsChecksWhileDatabaseIsAway(t *testing.T) {
	if !pgtest.Server().Managed() {
		t.Skip(pgtest.ErrNotManaged.Error())
	}
	st, run := setup(t)
	ctx := context.Background()
	rec := record.New(st, nil)
	pgtest.Server().Stop(t)
	for _, c := range someChecks(run, 300) {
		if err := rec.Add(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err := rec.Sync(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sync with the database down: %v, want a deadline (nothing can be written)", err)
	}
	if s := rec.Stats(); s.Written != 0 {
		t.Fatalf("%d checks written with the database down", s.Written)
	}
	pgtest.Server().Start(t)
	closeCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := rec.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM sentry_checks WHERE run_id = $1`, run).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 300 {
		t.Errorf("%d checks written after the outage, want 300", n)
	}
}

// TestRecorderCloseNamesWhatItCouldNotWrite: when the database does not
// come back in time, Close says how many completed checks are lost.
func TestRecorderCloseNamesWhatItCouldNotWrite(t *testing.T) {
	if !pgtest.Server().Managed() {
		t.Skip(pgtest.ErrNotManaged.Error())
	}
	st, run := setup(t)
	ctx := context.Background()
	rec := record.New(st, nil)
	pgtest.Server().Stop(t)
	for _, c := range someChecks(run, 10) {
		if err := rec.Add(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	closeCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err := rec.Close(closeCtx)
	pgtest.Server().Start(t)
	if err == nil || !strings.Contains(err.Error(), "10 completed checks could not be written") {
		t.Fatalf("Close: %v", err)
	}
	if err := rec.Add(ctx, someChecks(run, 1)[0]); !errors.Is(err, record.ErrClosed) {
		t.Errorf("Add after Close: %v", err)
	}
}

// TestSyncMirrorWritesThatMirrorsCounts: SyncMirror returns once the
// mirror's checks and counts are written, and writes only its counts (the
// other mirrors' wait for their own sync, a Sync or countEvery); the two
// mirrors' checks go through different lanes and both arrive.
func TestSyncMirrorWritesThatMirrorsCounts(t *testing.T) {
	st, run := setup(t)
	ctx := context.Background()
	rec := record.New(st, nil)
	defer rec.Close(ctx)
	start := time.Now()
	for _, mirror := range []int{1, 2, 3} {
		for _, c := range someChecks(run, 5) {
			c.MirrorID, c.Routine = mirror, true
			if err := rec.Add(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		failed := someChecks(run, 1)[0]
		failed.MirrorID, failed.Result = mirror, "timeout"
		if err := rec.Add(ctx, failed); err != nil {
			t.Fatal(err)
		}
	}
	counted := func() map[int]int64 {
		t.Helper()
		rows, err := st.Pool().Query(ctx, `SELECT mirror_id, sum(n)::bigint FROM sentry_check_hourly WHERE result = 'ok' GROUP BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int]int64{}
		for rows.Next() {
			var m int
			var n int64
			if err := rows.Scan(&m, &n); err != nil {
				t.Fatal(err)
			}
			out[m] = n
		}
		return out
	}
	if err := rec.SyncMirror(ctx, 2); err != nil {
		t.Fatal(err)
	}
	got := counted()
	if got[2] != 5 {
		t.Errorf("after SyncMirror(2): mirror 2 has %d routine checks counted, want 5", got[2])
	}
	var failures int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM sentry_checks WHERE mirror_id = 2`).Scan(&failures); err != nil {
		t.Fatal(err)
	}
	if failures != 1 {
		t.Errorf("after SyncMirror(2): %d check rows of mirror 2, want its failure", failures)
	}
	// Unless countEvery passed meanwhile (a very slow machine), nothing
	// wrote the other mirrors' counts.
	if time.Since(start) < 10*time.Second && (got[1] != 0 || got[3] != 0) {
		t.Errorf("SyncMirror(2) wrote other mirrors' counts: %v", got)
	}
	if err := rec.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := counted(); got[1] != 5 || got[2] != 5 || got[3] != 5 {
		t.Errorf("after Sync: counts %v, want 5 for each mirror", got)
	}
	if s := rec.Stats(); s.Added != 18 || s.Written != 18 || s.Routine != 15 {
		t.Errorf("stats %+v, want 18 added and written, 15 routine", s)
	}
}
