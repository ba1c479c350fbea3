package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestMarkMirrorOncePerRun: a sweep's judge that stopped half-way is redone
// by another sentry; a mirror the first judge marked keeps the state it
// wrote (streaks not counted twice, no second state change), while a mirror
// of a later run is written as usual.
func TestMarkMirrorOncePerRun(t *testing.T) {
	st, _ := setup(t)
	ctx := context.Background()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var mirror int
	if err := st.Pool().QueryRow(ctx, `INSERT INTO mirror_mirrors (name, baseurl) VALUES ('m', 'http://m.example/pub') RETURNING id`).Scan(&mirror); err != nil {
		t.Fatal(err)
	}
	run1, err := st.StartRun(ctx, store.RunSweep, 0, "us")
	if err != nil {
		t.Fatal(err)
	}
	run2, err := st.StartRun(ctx, store.RunSweep, 0, "us")
	if err != nil {
		t.Fatal(err)
	}
	mark := func(run int64, streak int, state, from, reason string) {
		t.Helper()
		err := st.MarkMirror(ctx, store.MirrorMarks{MirrorID: mirror, LogDate: time.Now(), Reason: reason,
			Down:  state == store.StateDown,
			State: &store.StateUpdate{State: state, FailStreak: streak, At: time.Now(), RunID: run, From: from, Reason: reason}})
		if err != nil {
			t.Fatal(err)
		}
	}
	read := func() (streak, changes int, reason string) {
		t.Helper()
		if err := st.Pool().QueryRow(ctx, `SELECT fail_streak, last_reason,
			(SELECT count(*) FROM sentry_state_changes WHERE mirror_id = $1)
			FROM sentry_mirror_state WHERE mirror_id = $1`, mirror).Scan(&streak, &reason, &changes); err != nil {
			t.Fatal(err)
		}
		return streak, changes, reason
	}
	mark(run1.ID, 1, store.StateDown, store.StateUp, "first judge")
	// The second judge read the state the first wrote, and counts again.
	mark(run1.ID, 2, store.StateDown, "", "second judge")
	if streak, changes, reason := read(); streak != 1 || changes != 1 || reason != "first judge" {
		t.Errorf("after judging run %d twice: streak %d, %d state changes, reason %q; want 1, 1, first judge",
			run1.ID, streak, changes, reason)
	}
	mark(run2.ID, 2, store.StateDown, "", "next sweep")
	if streak, changes, reason := read(); streak != 2 || changes != 1 || reason != "next sweep" {
		t.Errorf("after the next run: streak %d, %d state changes, reason %q; want 2, 1, next sweep", streak, changes, reason)
	}
}

// TestVantagesSeen: the electorate of the default quorum is the vantage
// points of recent sweeps and of daemons seen lately, not those of
// commands such as a prime run from an operator's machine.
func TestVantagesSeen(t *testing.T) {
	st, _ := setup(t)
	ctx := context.Background()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var mirror int
	if err := st.Pool().QueryRow(ctx, `INSERT INTO mirror_mirrors (name, baseurl) VALUES ('m', 'http://m.example/pub') RETURNING id`).Scan(&mirror); err != nil {
		t.Fatal(err)
	}
	for _, in := range []store.Instance{
		{ID: "d-us", Vantage: "us", Role: store.RoleDaemon},
		{ID: "c-laptop", Vantage: "laptop", Role: store.RoleCommand},
	} {
		if err := st.RegisterInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	seen := func() []string {
		t.Helper()
		v, err := st.VantagesSeen(ctx, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := seen(); !slices.Equal(got, []string{"us"}) {
		t.Errorf("with a daemon at us and a command at laptop: %v, want [us]", got)
	}
	// A sweep created by a command at eu while the daemon at us lives: both
	// check every mirror's reachability, both are seen.
	if err := st.RegisterInstance(ctx, store.Instance{ID: "c-eu", Vantage: "eu", Role: store.RoleCommand}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.CreateRun(ctx, store.NewRun{Kind: store.RunSweep, Vantage: "eu", Instance: "c-eu",
		Mirrors: []int{mirror}, Reach: true, Lease: time.Minute}, nil); err != nil {
		t.Fatal(err)
	}
	if got := seen(); !slices.Equal(got, []string{"eu", "us"}) {
		t.Errorf("after a sweep shared by eu and us: %v, want [eu us]", got)
	}
}
