package sentry_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/pgtest"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func someChecks(run store.Run, n int) []store.Check {
	out := make([]store.Check, n)
	for i := range out {
		out[i] = store.Check{RunID: run.ID, MirrorID: 1, Path: "", CheckedAt: time.Now(), Vantage: "test",
			Method: "HEAD", Result: "ok", Bytes: -1, Size: -1}
	}
	return out
}

// TestRecorderKeepsChecksWhileDatabaseIsAway stops PostgreSQL while checks
// come in: they wait, bounded, and are all written once it is back.
func TestRecorderKeepsChecksWhileDatabaseIsAway(t *testing.T) {
	_, b := setup(t)
	ctx := context.Background()
	run, err := b.st.StartRun(ctx, store.RunSweep, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	rec := sentry.NewRecorder(b.st, nil)
	pgtest.Server().Stop(t)
	for _, c := range someChecks(run, 300) {
		if err := rec.Add(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err = rec.Sync(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sync with the database down: %v, want a deadline (nothing can be written)", err)
	}
	if _, written, _ := rec.Stats(); written != 0 {
		t.Fatalf("%d checks written with the database down", written)
	}
	pgtest.Server().Start(t)
	closeCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := rec.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.st.Pool().QueryRow(ctx, `SELECT count(*) FROM sentry_checks WHERE run_id = $1`, run.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 300 {
		t.Errorf("%d checks written after the outage, want 300", n)
	}
}

// TestRecorderCloseNamesWhatItCouldNotWrite: when the database does not
// come back in time, Close says how many completed checks are lost.
func TestRecorderCloseNamesWhatItCouldNotWrite(t *testing.T) {
	_, b := setup(t)
	ctx := context.Background()
	run, err := b.st.StartRun(ctx, store.RunSweep, 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	rec := sentry.NewRecorder(b.st, nil)
	pgtest.Server().Stop(t)
	for _, c := range someChecks(run, 10) {
		if err := rec.Add(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	closeCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err = rec.Close(closeCtx)
	pgtest.Server().Start(t)
	if err == nil || !strings.Contains(err.Error(), "10 completed checks could not be written") {
		t.Fatalf("Close: %v", err)
	}
	if err := rec.Add(ctx, someChecks(run, 1)[0]); !errors.Is(err, sentry.ErrRecorderClosed) {
		t.Errorf("Add after Close: %v", err)
	}
}

// TestStaleRunsOfDeadProcessesAreClosed: a run left "running" by a process
// that no longer exists is recorded as failed by the next run.
func TestStaleRunsOfDeadProcessesAreClosed(t *testing.T) {
	d, b := setup(t)
	ctx := context.Background()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	var id, live int64
	if err := b.st.Pool().QueryRow(ctx, `INSERT INTO sentry_runs (kind, vantage, host, pid) VALUES ('sweep', 'x', $1, $2) RETURNING id`,
		host, dead.Process.Pid).Scan(&id); err != nil {
		t.Fatal(err)
	}
	// A run of a live process (ours, under another pid: our parent) stays.
	if err := b.st.Pool().QueryRow(ctx, `INSERT INTO sentry_runs (kind, vantage, host, pid) VALUES ('sweep', 'x', $1, $2) RETURNING id`,
		host, os.Getppid()).Scan(&live); err != nil {
		t.Fatal(err)
	}
	// Shared runs (several sentries may work them) are judged by their
	// instances: one whose creator stopped beating a while ago, with no
	// daemon left, is closed; one whose creator beats stays.
	var sharedGone, sharedLive int64
	if err := b.st.Pool().QueryRow(ctx, `WITH i AS (INSERT INTO sentry_instances (id, vantage, role, host, pid, last_seen)
			VALUES ('gone', 'x', 'command', 'elsewhere', 1, now() - interval '1 hour'), ('beating', 'x', 'command', 'elsewhere', 2, now()))
		INSERT INTO sentry_runs (kind, vantage, host, pid, instance) VALUES ('sweep', 'x', 'elsewhere', 1, 'gone'), ('sweep', 'x', 'elsewhere', 2, 'beating')
		RETURNING id`).Scan(&sharedGone); err != nil {
		t.Fatal(err)
	}
	sharedLive = sharedGone + 1
	sweep(t, d, false)
	var outcome, reason, liveOutcome, goneOutcome, beatingOutcome string
	if err := b.st.Pool().QueryRow(ctx, `SELECT outcome, reason, (SELECT outcome FROM sentry_runs WHERE id = $2),
			(SELECT outcome FROM sentry_runs WHERE id = $3), (SELECT outcome FROM sentry_runs WHERE id = $4)
		FROM sentry_runs WHERE id = $1`,
		id, live, sharedGone, sharedLive).Scan(&outcome, &reason, &liveOutcome, &goneOutcome, &beatingOutcome); err != nil {
		t.Fatal(err)
	}
	if outcome != "failed" || !strings.Contains(reason, "ended before recording its end") {
		t.Errorf("stale run: %s %q", outcome, reason)
	}
	if liveOutcome != "running" {
		t.Errorf("the run of a live process was closed: %s", liveOutcome)
	}
	if goneOutcome != "interrupted" || beatingOutcome != "running" {
		t.Errorf("shared runs: of a creator gone %s (want interrupted), of a creator beating %s (want running)",
			goneOutcome, beatingOutcome)
	}
}
