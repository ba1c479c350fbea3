package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// rowState is a mirror_location_mirror_map row's flags and its xmin (the
// transaction that last wrote it: unchanged when nothing was written).
type rowState struct {
	active, healthy bool
	xmin            string
}

func rowsOf(t *testing.T, st *store.Store, mirror int) map[int]rowState {
	t.Helper()
	rows, err := st.Pool().Query(context.Background(), `SELECT location_id, active, healthy, xmin::text
		FROM mirror_location_mirror_map WHERE mirror_id = $1`, mirror)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int]rowState{}
	for rows.Next() {
		var loc int
		var r rowState
		if err := rows.Scan(&loc, &r.active, &r.healthy, &r.xmin); err != nil {
			t.Fatal(err)
		}
		out[loc] = r
	}
	return out
}

// TestMarkingVouchesOnlyForVerifiedMirrors: "this mirror has been verified
// by sentry at least once" is a row of sentry_mirror_verified, written by
// the first marking that says it verified a file there. Until then, every
// marking takes off the rows of the locations it covers that an earlier
// checker left active or healthy (only those: nothing else is written, no
// row is created, locations it does not cover are left alone), and its
// sentry_log row says so; once verified, a mirror judged down keeps its
// rows' active flags (healthy=false only).
func TestMarkingVouchesOnlyForVerifiedMirrors(t *testing.T) {
	t.Parallel()
	st, mirror, _ := migrated(t)
	ctx, pool := context.Background(), st.Pool()
	var locs []int
	for _, p := range []string{"/a/1", "/a/2", "/a/3", "/a/4", "/b/other-release"} {
		locs = append(locs, factory.Location(ctx, t, pool, &factory.LocationOpts{Path: p}).ID)
	}
	inherit := func(loc int, active, healthy bool) {
		factory.LocationMirror(ctx, t, pool, &factory.LocationMirrorOpts{LocationID: loc, MirrorID: mirror,
			Active: factory.Ptr(active), Healthy: factory.Ptr(healthy)})
	}
	// An earlier checker's rows: offered, the fallback, already off; the
	// fourth location has no row; the fifth is of a release not covered.
	inherit(locs[0], true, true)
	inherit(locs[1], true, false)
	inherit(locs[2], false, false)
	inherit(locs[4], true, true)
	covered := locs[:4]
	before := rowsOf(t, st, mirror)

	// An unreachable mirror, judged down: trouble on every location.
	logDate := time.Now().Truncate(time.Microsecond)
	trouble := func(ids ...int) []decide.LocationMark {
		var out []decide.LocationMark
		for _, id := range ids {
			out = append(out, decide.LocationMark{LocationID: id, Mark: decide.Trouble})
		}
		return out
	}
	if err := st.MarkMirror(ctx, store.MirrorMarks{MirrorID: mirror, LogDate: logDate, Reason: "prime 1.5: mirror down",
		Locations: trouble(covered...), Down: true, Covered: covered}); err != nil {
		t.Fatal(err)
	}
	after := rowsOf(t, st, mirror)
	for _, loc := range locs[:2] {
		if r := after[loc]; r.active || r.healthy {
			t.Errorf("location %d inherited on a mirror never verified: %+v after marking, want off", loc, r)
		}
	}
	if after[locs[2]] != before[locs[2]] {
		t.Errorf("a row already off was written: %+v, was %+v", after[locs[2]], before[locs[2]])
	}
	if _, ok := after[locs[3]]; ok {
		t.Errorf("a row was created for an unvouched location: %+v", after[locs[3]])
	}
	if r := after[locs[4]]; !r.active || r.healthy {
		t.Errorf("a location not covered: %+v, want active as the earlier checker left it, healthy=false (down)", r)
	}
	var reason string
	if err := pool.QueryRow(ctx, `SELECT reason FROM sentry_log WHERE mirror_id = $1 AND log_date = $2`, mirror, logDate).
		Scan(&reason); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reason, "2 rows left active by an earlier checker taken off: never verified by sentry") {
		t.Errorf("sentry_log reason %q does not say which rows were taken off and why", reason)
	}
	if v, err := st.VerifiedMirrors(ctx); err != nil || len(v) != 0 {
		t.Fatalf("verified mirrors %v (%v), want none", v, err)
	}

	// Marked again with nothing new: nothing is written.
	again := rowsOf(t, st, mirror)
	if err := st.MarkMirror(ctx, store.MirrorMarks{MirrorID: mirror, LogDate: logDate.Add(time.Second), Reason: "sweep: unreachable",
		Covered: covered}); err != nil {
		t.Fatal(err)
	}
	for loc, r := range rowsOf(t, st, mirror) {
		if again[loc] != r {
			t.Errorf("location %d written by a marking that changed nothing: %+v, was %+v", loc, r, again[loc])
		}
	}

	// The mirror comes up and a run verifies a file: it is verified from
	// then on, and its good location offered.
	if err := st.MarkMirror(ctx, store.MirrorMarks{MirrorID: mirror, LogDate: logDate.Add(2 * time.Second), Up: true,
		Reason: "prime 1.5: 1/1 files verified", Locations: []decide.LocationMark{{LocationID: locs[0], Mark: decide.Good}},
		Covered: covered, Verified: true}); err != nil {
		t.Fatal(err)
	}
	v, err := st.VerifiedMirrors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if at, ok := v[mirror]; !ok || at.IsZero() {
		t.Fatalf("verified mirrors %v: the mirror is not recorded as verified", v)
	}
	first := v[mirror]
	// Judged down after it was verified: active unchanged (DESIGN
	// section 2), and the record of the first verification kept.
	if err := st.MarkMirror(ctx, store.MirrorMarks{MirrorID: mirror, LogDate: logDate.Add(3 * time.Second),
		Reason: "sweep: unreachable", Locations: trouble(covered...), Down: true, Covered: covered, Verified: true}); err != nil {
		t.Fatal(err)
	}
	if r := rowsOf(t, st, mirror)[locs[0]]; !r.active || r.healthy {
		t.Errorf("a verified mirror judged down: %+v, want active=true (unchanged), healthy=false", r)
	}
	if v, _ := st.VerifiedMirrors(ctx); !v[mirror].Equal(first) {
		t.Errorf("first verification moved from %v to %v", first, v[mirror])
	}
}

// TestMigrationRecordsWhatEarlierSentriesVerified: migration 0015 records
// as verified the mirrors an earlier sentry verified a file on (a file
// state verified or hashed, or an ok check hashed or sampled), and no
// other.
func TestMigrationRecordsWhatEarlierSentriesVerified(t *testing.T) {
	t.Parallel()
	st, _ := setup(t)
	ctx, pool := context.Background(), st.Pool()
	migs, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	// The schema as it was before migration 0015.
	if _, err := pool.Exec(ctx, `CREATE TABLE sentry_schema_migrations (version int PRIMARY KEY, name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, m := range migs {
		if m.Version >= 15 {
			break
		}
		if _, err := pool.Exec(ctx, m.SQL); err != nil {
			t.Fatalf("migration %d: %v", m.Version, err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO sentry_schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}
	ids := map[string]int{}
	for _, n := range []string{"state-verified", "state-hashed", "check-hashed", "check-sampled", "failing", "head-only", "never"} {
		ids[n] = factory.Mirror(ctx, t, pool, &factory.MirrorOpts{Name: n}).ID
	}
	var rel int64
	if err := pool.QueryRow(ctx, `INSERT INTO sentry_releases (name, manifest_url, manifest_sha256, file_count, total_bytes)
		VALUES ('1.5', 'http://master/SHA256SUMS', '', 1, 1) RETURNING id`).Scan(&rel); err != nil {
		t.Fatal(err)
	}
	run := insertRun(t, st)
	state := func(mirror int, result, verified, hashed string) {
		if _, err := pool.Exec(ctx, `INSERT INTO sentry_file_state (mirror_id, release_id, path, result, last_checked_at, verified_at, hashed_at)
			VALUES ($1, $2, 'a', $3, now(), now() - nullif($4, '')::interval, now() - nullif($5, '')::interval)`,
			mirror, rel, result, verified, hashed); err != nil {
			t.Fatal(err)
		}
	}
	check := func(mirror int, result string, hashed bool, sample any) {
		if _, err := pool.Exec(ctx, `INSERT INTO sentry_checks (run_id, mirror_id, release_id, path, checked_at, vantage, method, result, hashed, sample_blocks)
			VALUES ($1, $2, $3, 'a', now() - interval '2 days', 'us', 'GET', $4, $5, $6)`, run, mirror, rel, result, hashed, sample); err != nil {
			t.Fatal(err)
		}
	}
	state(ids["state-verified"], "ok", "1 day", "")
	state(ids["state-hashed"], "timeout", "", "3 days") // its verification voided since, its hash on record
	check(ids["check-hashed"], "ok", true, nil)
	check(ids["check-sampled"], "ok", false, 32)
	state(ids["failing"], "not_found", "", "")
	check(ids["failing"], "checksum_mismatch", true, nil)
	check(ids["head-only"], "ok", false, nil)

	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := st.VerifiedMirrors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, id := range ids {
		want := strings.HasPrefix(name, "state-") || strings.HasPrefix(name, "check-")
		if _, got := v[id]; got != want {
			t.Errorf("mirror %s: recorded as verified %v, want %v", name, got, want)
		}
	}
	if at := v[ids["state-hashed"]]; time.Since(at) < 71*time.Hour {
		t.Errorf("state-hashed first verified at %v, want its hash's time, 3 days ago", at)
	}
}
