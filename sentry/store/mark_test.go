package store_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// migrated opens a migrated Store with one mirror and one sweep run.
func migrated(t *testing.T) (st *store.Store, mirror int, run int64) {
	t.Helper()
	st, _ = setup(t)
	ctx := context.Background()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	mirror = factory.Mirror(ctx, t, st.Pool(), &factory.MirrorOpts{Name: "m", BaseURL: "http://m.example/pub"}).ID
	return st, mirror, insertRun(t, st)
}

func insertRun(t *testing.T, st *store.Store) int64 {
	t.Helper()
	var id int64
	if err := st.Pool().QueryRow(context.Background(), `INSERT INTO sentry_runs (kind, vantage, host, pid)
		VALUES ('sweep', 'us', 'test', 1) RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// fence is a store.Fence a test opens and closes.
type fence struct {
	key  string
	held *bool
}

func (f fence) FenceKey() string                            { return f.key }
func (f fence) Holds(context.Context, pgx.Tx) (bool, error) { return *f.held, nil }

// TestJudgeMirrorOncePerRun: a sweep's judgement that stopped half-way is
// redone by another sentry; a mirror the first judgement marked keeps what
// it wrote (streaks not counted twice, no second state change, judge not
// asked again), while a later run judges it as usual from the state the
// first wrote.
func TestJudgeMirrorOncePerRun(t *testing.T) {
	st, mirror, run1 := migrated(t)
	run2 := insertRun(t, st)
	ctx := context.Background()
	starts := map[int64]time.Time{run1: time.Now().Add(-time.Hour), run2: time.Now()}
	judge := func(run int64, reason string) (prev store.MirrorState, wrote bool) {
		t.Helper()
		_, wrote, err := st.JudgeMirror(ctx, mirror, run, starts[run], nil, func(p store.MirrorState) store.MirrorMarks {
			prev = p
			st := store.StateUp
			from := ""
			if p.FailStreak+1 >= 2 {
				st, from = store.StateDown, p.State
			}
			return store.MirrorMarks{LogDate: time.Now(), Reason: reason, Down: st == store.StateDown,
				State: &store.StateUpdate{State: st, FailStreak: p.FailStreak + 1, At: time.Now(), From: from, Reason: reason}}
		})
		if err != nil {
			t.Fatal(err)
		}
		return prev, wrote
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
	if prev, wrote := judge(run1, "first judge"); !wrote || prev.State != store.StateUp || prev.FailStreak != 0 {
		t.Fatalf("first judgement: wrote %v from %+v", wrote, prev)
	}
	if _, wrote := judge(run1, "second judge"); wrote {
		t.Error("the same run judged the mirror twice")
	}
	if streak, changes, reason := read(); streak != 1 || changes != 0 || reason != "first judge" {
		t.Errorf("after judging run %d twice: streak %d, %d state changes, reason %q; want 1, 0, first judge", run1, streak, changes, reason)
	}
	if prev, wrote := judge(run2, "next sweep"); !wrote || prev.FailStreak != 1 {
		t.Errorf("next run: wrote %v from %+v; want from streak 1", wrote, prev)
	}
	if streak, changes, reason := read(); streak != 2 || changes != 1 || reason != "next sweep" {
		t.Errorf("after the next run: streak %d, %d state changes, reason %q; want 2, 1, next sweep", streak, changes, reason)
	}
}

// TestFencedWritesWriteNothing: marks and checks made under a lease that no
// longer holds are not written, and the writer is told (ErrFenced, the
// count of checks left out); writes under a lease that holds, and unfenced
// ones, go through.
func TestFencedWritesWriteNothing(t *testing.T) {
	st, mirror, run := migrated(t)
	ctx := context.Background()
	loc := factory.Location(ctx, t, st.Pool(), &factory.LocationOpts{Path: "/x"}).ID
	lost, kept := false, true
	gone, ours := fence{"a", &lost}, fence{"b", &kept}
	marks := store.MirrorMarks{MirrorID: mirror, LogDate: time.Now(), Reason: "r", Up: true,
		Locations: []decide.LocationMark{{LocationID: loc, Mark: decide.Good}}}
	marks.Fence = gone
	if err := st.MarkMirror(ctx, marks); !errors.Is(err, store.ErrFenced) {
		t.Errorf("marks under a lost lease: %v, want ErrFenced", err)
	}
	if _, wrote, err := st.JudgeMirror(ctx, mirror, run, time.Now(), gone, func(store.MirrorState) store.MirrorMarks {
		t.Error("judge asked under a lost lease")
		return marks
	}); wrote || !errors.Is(err, store.ErrFenced) {
		t.Errorf("judgement under a lost lease: wrote %v, %v", wrote, err)
	}
	count := func(table string) int {
		var n int
		if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count("mirror_location_mirror_map") + count("sentry_log") + count("sentry_mirror_state"); n != 0 {
		t.Errorf("%d rows written under a lost lease", n)
	}
	marks.Fence = ours
	if err := st.MarkMirror(ctx, marks); err != nil {
		t.Fatal(err)
	}
	if count("mirror_location_mirror_map") != 1 {
		t.Error("marks under a held lease not written")
	}
	check := func(f store.Fence, path string) store.Check {
		return store.Check{RunID: run, MirrorID: mirror, Path: path, CheckedAt: time.Now(), Vantage: "us",
			Method: "HEAD", Result: "ok", Bytes: -1, Size: -1, Fence: f}
	}
	fenced, err := st.WriteChecks(ctx, store.Batch{Checks: []store.Check{check(gone, "a"), check(ours, "b"), check(nil, "c"), check(gone, "d")}})
	if err != nil {
		t.Fatal(err)
	}
	if fenced != 2 {
		t.Errorf("%d checks left out, want 2", fenced)
	}
	rows, err := st.Pool().Query(ctx, `SELECT path FROM sentry_checks ORDER BY path`)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(paths, ",") != "b,c" {
		t.Errorf("checks written: %v, want b,c", paths)
	}
	var hourly int64
	if err := st.Pool().QueryRow(ctx, `SELECT coalesce(sum(n), 0) FROM sentry_check_hourly`).Scan(&hourly); err != nil {
		t.Fatal(err)
	}
	if hourly != 2 {
		t.Errorf("hourly counts hold %d checks, want the 2 written", hourly)
	}
}

// TestErrorsKeepTheirChainWithoutThePassword: a database error that leaves
// the store never shows the password, even when it is a word of every
// table name, and still lets callers see what PostgreSQL said (a refused
// statement is not retried forever).
func TestErrorsKeepTheirChainWithoutThePassword(t *testing.T) {
	_, dbURL := setup(t)
	ctx := context.Background()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	role := fmt.Sprintf("sentry_pw_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN SUPERUSER PASSWORD 'sentry'`, role)); err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "sentry")
	st, err := store.Open(ctx, u.String(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// A check whose result is no word of the contract: the check
	// constraint refuses it.
	_, err = st.WriteChecks(ctx, store.Batch{Checks: []store.Check{{RunID: 999999, MirrorID: 1, CheckedAt: time.Now(), Vantage: "v",
		Method: "HEAD", Result: "bogus", Bytes: -1, Size: -1}}})
	if err == nil {
		t.Fatal("a check of no known result was written")
	}
	// The password "sentry" is taken out where it stands as a password,
	// not out of the table's name.
	if strings.Contains(err.Error(), ":sentry@") || strings.Contains(err.Error(), "password=sentry") ||
		!strings.Contains(err.Error(), `relation "sentry_checks"`) {
		t.Errorf("the error shows the password or lost the table's name: %v", err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
		t.Errorf("the error lost PostgreSQL's answer: %v (%T)", err, errors.Unwrap(err))
	}
}

// TestSaveReleaseConcurrently: several sentries saving the same new
// release at once all succeed, and record it once (the first save of a
// release used to fail on its unique name when two met).
func TestSaveReleaseConcurrently(t *testing.T) {
	st, _ := setup(t)
	ctx := context.Background()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	files := []store.ReleaseFile{{Path: "a", Size: 1, Algo: "sha256", Hash: strings.Repeat("ab", 32)}}
	const savers = 8
	errs := make(chan error, savers)
	ids := make(chan int64, savers)
	start := make(chan struct{})
	for range savers {
		go func() {
			<-start
			rel, err := st.SaveRelease(ctx, "2.0", "https://example.org/2.0/SHA256SUMS", "sum", files, store.ManifestValidators{})
			errs <- err
			ids <- rel.ID
		}()
	}
	close(start)
	first := int64(0)
	for range savers {
		if err := <-errs; err != nil {
			t.Errorf("a concurrent save failed: %v", err)
		}
		if id := <-ids; first == 0 {
			first = id
		} else if id != first {
			t.Errorf("saves returned releases %d and %d", first, id)
		}
	}
	var n, files2 int
	if err := st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM sentry_releases), (SELECT count(*) FROM sentry_release_files)`).
		Scan(&n, &files2); err != nil {
		t.Fatal(err)
	}
	if n != 1 || files2 != 1 {
		t.Errorf("%d releases and %d files recorded, want 1 and 1", n, files2)
	}
}
