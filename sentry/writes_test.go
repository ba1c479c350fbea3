package sentry_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// bigWorld is release 2.0 of 1,000 small files (100 locations in 10
// languages) on n mirrors, primed.
type bigWorld struct {
	*world.World
	rel     *localmirror.Release
	mirrors []*localmirror.Server
}

func newBigWorld(t *testing.T, n int) *bigWorld {
	t.Helper()
	ctx := context.Background()
	w := &bigWorld{World: world.New(t, nil)}
	w.rel = &localmirror.Release{Name: "2.0", Dir: "/firefox/releases/2.0/", Files: map[string][]byte{}}
	langs := []string{"ar", "de", "el", "en-US", "es", "fr", "it", "ja", "pl", "zh-TW"}
	for i := range 100 {
		for _, l := range langs {
			p := fmt.Sprintf("os%02d/%s/file%02d.bin", i, l, i)
			w.rel.Files[p] = localmirror.Content(p, 64)
		}
	}
	w.Master.PutRelease(w.rel)
	w.Master.Put(w.rel, "SHA256SUMS", w.rel.Manifest())
	pool := w.Pool()
	product := factory.Product(ctx, t, pool, &factory.ProductOpts{Name: "Firefox-2.0", Langs: langs})
	for i := range 100 {
		factory.Location(ctx, t, pool, &factory.LocationOpts{ProductID: product.ID, OSID: w.WinOS,
			Path: fmt.Sprintf("/firefox/releases/2.0/os%02d/:lang/file%02d.bin", i, i)})
	}
	for i := range n {
		s := world.Static(t, fmt.Sprintf("m%02d", i), w.rel)
		w.AddMirror(t, s.Name, s.URL, nil)
		w.mirrors = append(w.mirrors, s)
	}
	rep, err := sentry.Prime(ctx, w.Deps, sentry.PrimeOptions{Release: "2.0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rep.Mirrors {
		if m.State != "ok" || m.FilesOK != 1000 {
			t.Fatalf("prime of %s: %+v", m.Name, m)
		}
	}
	return w
}

// written counts, by table, the rows written (inserted or updated) since
// transaction id since: rows whose current version a later transaction
// made.
func (w *bigWorld) written(t *testing.T, since int64) map[string]int {
	t.Helper()
	ctx := context.Background()
	rows, err := w.Pool().Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	out := map[string]int{}
	for _, table := range tables {
		var n int
		if err := w.Pool().QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE xmin::text::bigint > $1`, table),
			since).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			out[table] = n
		}
	}
	return out
}

func (w *bigWorld) txid(t *testing.T) int64 {
	t.Helper()
	var id int64
	if err := w.Pool().QueryRow(context.Background(), `SELECT txid_current()`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// size is the database's size after VACUUM.
func (w *bigWorld) size(t *testing.T) int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := w.Pool().Exec(ctx, `VACUUM`); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := w.Pool().QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func describe(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// TestUnchangedSweepCostsWhatChanged: a light sweep of 20 mirrors × 1,000
// files in which nothing changed writes a few rows per mirror (its work
// row, its sentry_log row, its hourly count), not a row per check, and
// hardly grows the database; a sweep in which one file changed writes
// that change.
//
// It counts what every part writes in a sweep — the engine's run and work
// rows, the recorder's hourly counts, the sweep's marks and log, the
// store's file states — so it tests the whole sentry, here.
func TestUnchangedSweepCostsWhatChanged(t *testing.T) {
	t.Parallel()
	const mirrors = 20
	w := newBigWorld(t, mirrors)
	// The first sweeps after the prime settle what the sweeps know (the
	// conditional requests' validators, each mirror's good streak up to
	// state.up_after); the next is measured.
	for range w.Deps.Config.State.UpAfter {
		w.Sweep(t, false)
	}
	before, since := w.size(t), w.txid(t)
	rep := w.Sweep(t, false)
	if rep.Outcome != "completed" || len(rep.Mirrors) != mirrors {
		t.Fatalf("sweep: %s, %d mirrors", rep.Outcome, len(rep.Mirrors))
	}
	for _, m := range rep.Mirrors {
		if m.Checked != 1000 || m.OK+m.Unchanged != 1000 {
			t.Fatalf("%s: %+v", m.Name, m)
		}
	}
	rows := w.written(t, since)
	const constant = 10 // the run's own row, its instance
	if n := sum(rows); n > 4*mirrors+constant {
		t.Errorf("an unchanged sweep of %d mirrors × 1,000 files wrote %d rows (%s), want at most %d",
			mirrors, n, describe(rows), 4*mirrors+constant)
	}
	if rows["sentry_checks"] != 0 || rows["sentry_file_state"] != 0 || rows["mirror_location_mirror_map"] != 0 {
		t.Errorf("an unchanged sweep wrote per-file rows: %s", describe(rows))
	}
	after := w.size(t)
	if grew := after - before; grew >= 256<<10 {
		t.Errorf("the database grew by %d KiB in an unchanged sweep, want under 256 KiB (%s)", grew>>10, describe(rows))
	}
	t.Logf("unchanged sweep of %d × 1,000: %d rows written (%s); the database grew by %d KiB",
		mirrors, sum(rows), describe(rows), (after-before)>>10)

	// One file changes on one mirror: the sweep writes that change.
	changed := "os07/de/file07.bin"
	w.mirrors[3].Put(w.rel, changed, localmirror.Content("respun", 99))
	since = w.txid(t)
	rep = w.Sweep(t, false)
	rows = w.written(t, since)
	var got []string
	recorded, err := w.Pool().Query(context.Background(), `SELECT m.name, c.path, c.result FROM sentry_checks c
		JOIN mirror_mirrors m ON m.id = c.mirror_id WHERE c.run_id = $1`, rep.RunID)
	if err != nil {
		t.Fatal(err)
	}
	for recorded.Next() {
		var mirror, path, result string
		if err := recorded.Scan(&mirror, &path, &result); err != nil {
			t.Fatal(err)
		}
		got = append(got, mirror+" "+path+" "+result)
	}
	recorded.Close()
	if want := "m03 " + changed + " size_mismatch"; len(got) != 1 || got[0] != want {
		t.Errorf("a sweep with one changed file recorded %v, want [%s]", got, want)
	}
	if rows["sentry_file_state"] != 1 || rows["mirror_location_mirror_map"] != 1 {
		t.Errorf("the change: %s; want the file's state and its location's mark", describe(rows))
	}
	var active bool
	if err := w.Pool().QueryRow(context.Background(), `SELECT lmm.active FROM mirror_location_mirror_map lmm
		JOIN mirror_locations l ON l.id = lmm.location_id JOIN mirror_mirrors m ON m.id = lmm.mirror_id
		WHERE m.name = 'm03' AND l.path = '/firefox/releases/2.0/os07/:lang/file07.bin'`).Scan(&active); err != nil {
		t.Fatal(err)
	}
	if active {
		t.Error("the location of the changed file is still offered")
	}
}
