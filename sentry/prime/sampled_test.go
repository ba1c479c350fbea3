package prime_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/store"
	"github.com/mirrorsentry/sentry/sentry/web"
)

const bad = "linux-x86_64/de/firefox-1.5.tar.bz2"

// cache starts a pull-through cache holding the release (or what a test
// puts there instead), registered as a pull mirror: it says MISS the first
// time a file is asked for and HIT after, as a cache that fetched and kept
// it would.
func cache(t *testing.T, w *world.World, name string) (*localmirror.Server, int) {
	t.Helper()
	s, id := w.Static(t, name) // no settings row: a pull mirror
	var mu sync.Mutex
	asked := map[string]bool{}
	s.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if asked[r.URL.Path] {
			w.Header().Set("X-Cache-Status", "HIT")
		} else {
			w.Header().Set("X-Cache-Status", "MISS")
		}
		asked[r.URL.Path] = true
		return false
	})
	return s, id
}

// corrupt30 changes 30% of a file's 16 KiB blocks (every block i of the
// middle with i*7 % 10 < 3), leaving the first and the last alone: only the
// random picks can find them.
func corrupt30(b []byte) []byte {
	c := bytes.Clone(b)
	n := len(b) / (16 << 10)
	for i := 1; i < n-1; i++ {
		if i*7%10 < 3 {
			c[i*16<<10+100] ^= 0x33
		}
	}
	return c
}

// ignoringRange makes s answer every GET with the whole file, whatever
// its Range header says.
func ignoringRange(s *localmirror.Server) {
	s.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		r.Header.Del("Range")
		return false
	})
}

// TestSampledPrimeCatchesWrongFiles: with verify.mode sampled, a prime
// reads 32 of a file's 128 blocks (the first and the last among them) in
// one Range request and compares them with the master's block digests:
// another version, an HTML page of the same size, a truncated file and a
// file with 30% of its blocks changed are each caught, and their locations
// taken off; good files are verified with a quarter of their bytes, the
// check rows saying how (32 of 128 blocks); a mirror that ignores Range is
// verified in full. The master's copy was read once per file, for its
// digests.
func TestSampledPrimeCatchesWrongFiles(t *testing.T) {
	t.Parallel()
	w := world.New(t, &world.Options{Sampled: true})
	ctx := context.Background()
	good := w.Rel.Files[bad]
	html := []byte("<!DOCTYPE html>\n<html><head><title>503</title></head><body>" + strings.Repeat("Service unavailable. ", world.SampledFileSize/20))[:len(good)]
	faults := []struct {
		name string
		body []byte
		kind string
	}{
		{"another-version", localmirror.Content("firefox-1.4.tar.bz2", len(good)-7777), "size_mismatch"},
		{"html-page", html, "checksum_mismatch"},
		{"truncated", good[:len(good)/3], "size_mismatch"},
		{"corrupt-30", corrupt30(good), "checksum_mismatch"},
	}
	_, goodID := cache(t, w, "good")
	ids := map[string]int{}
	for _, f := range faults {
		s, id := cache(t, w, f.name)
		s.Put(w.Rel, bad, f.body)
		ids[f.name] = id
	}
	ign, ignID := cache(t, w, "ignores-range")
	ignoringRange(ign)

	rep := w.Prime(t)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
	}
	if s := world.MirrorSums(t, rep, "good"); s.State != "ok" || s.FilesOK != 4 || s.FilesSampled != 4 || s.BytesVerified != 4*32*16<<10 {
		t.Errorf("good: %+v; want 4 files sampled, 32 blocks of 16 KiB each", s)
	}
	if s := world.MirrorSums(t, rep, "ignores-range"); s.State != "ok" || s.FilesOK != 4 || s.FilesSampled != 0 || s.BytesVerified != 4*world.SampledFileSize {
		t.Errorf("ignores-range: %+v; want 4 files verified in full", s)
	}
	marks := w.Marks(t)
	for _, f := range faults {
		s := world.MirrorSums(t, rep, f.name)
		if s.State != "partial" || s.FilesOK != 3 || s.Failures[checks.Kind(f.kind)] != 1 || !strings.Contains(s.FirstFailure, bad) {
			t.Errorf("%s: %+v; want %s of %s", f.name, s, f.kind, bad)
		}
		if got := marks[w.LocLin][ids[f.name]]; got != world.Off {
			t.Errorf("%s: linux location %+v, want taken off", f.name, got)
		}
		if got := marks[w.LocWin][ids[f.name]]; got != world.Good {
			t.Errorf("%s: win location %+v, want good", f.name, got)
		}
	}

	// The check rows say how each file was verified.
	var sampled, full, other int
	if err := w.Pool().QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE mirror_id = $1 AND result = 'ok' AND NOT hashed AND sample_blocks = 32 AND file_blocks = 128),
		count(*) FILTER (WHERE mirror_id = $2 AND result = 'ok' AND hashed AND sample_blocks IS NULL),
		count(*) FILTER (WHERE mirror_id IN ($1, $2) AND NOT (result = 'ok'))
		FROM sentry_checks WHERE run_id = $3`, goodID, ignID, rep.RunID).Scan(&sampled, &full, &other); err != nil {
		t.Fatal(err)
	}
	if sampled != 4 || full != 4 || other != 0 {
		t.Errorf("check rows: %d sampled (32 of 128 blocks) on good, %d in full on ignores-range, %d others; want 4, 4, 0", sampled, full, other)
	}
	var by []string
	rows, err := w.Pool().Query(ctx, `SELECT DISTINCT verified_by || ' ' || (hashed_at IS NULL)::text FROM sentry_file_state
		WHERE mirror_id = $1 OR mirror_id = $2 ORDER BY 1`, goodID, ignID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		by = append(by, s)
	}
	if strings.Join(by, ", ") != "full false, sampled true" {
		t.Errorf("file states: %v; want verified by full (hashed) and by sampled (never hashed)", by)
	}
	var digests int
	if err := w.Pool().QueryRow(ctx, `SELECT count(*) FROM sentry_block_digests WHERE block_size = 16384`).Scan(&digests); err != nil {
		t.Fatal(err)
	}
	if digests != 4 {
		t.Errorf("%d files' block digests stored, want 4", digests)
	}

	// The report and the status page say how files were verified.
	rr := report.New(w.Pool(), nil)
	up, err := rr.Release(ctx, "1.5")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range up.Mirrors {
		want := map[string]int{"good": 4, "ignores-range": 0}[m.Name]
		if m.Name != "good" && m.Name != "ignores-range" {
			want = 3
		}
		if m.Sampled != want {
			t.Errorf("release report, %s: %d files held by sampling, want %d", m.Name, m.Sampled, want)
		}
	}
	now := time.Now()
	md, err := rr.Mirror(ctx, "html-page", report.Window{Since: now.Add(-time.Hour), Until: now.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.RecentFailures) != 1 || md.RecentFailures[0].Read != "1 of 128 blocks" {
		t.Errorf("mirror report, html-page: recent failures %+v; want one, read as 1 of 128 blocks", md.RecentFailures)
	}
	srv := world.ServePage(t, web.Options{Reporter: rr})
	if code, body, _ := world.Get(t, srv.URL+"/releases/1.5"); code != 200 || !strings.Contains(body, "By sampling") ||
		!strings.Contains(body, `<td class="n">4</td><td>`) {
		t.Errorf("/releases/1.5: %d, no By sampling column with good's 4:\n%s", code, body)
	}
	if code, body, _ := world.Get(t, srv.URL+"/mirrors/html-page"); code != 200 || !strings.Contains(body, "<td>1 of 128 blocks</td>") {
		t.Errorf("/mirrors/html-page: %d, the failure's read not shown:\n%s", code, body)
	}
}

// TestSampledPrimeMissesOneFlippedByteTheDeepSweepFindsIt: a file with one
// byte flipped in a block the prime's sample does not read passes the
// prime — what sampling cannot promise — and is found by the next deep
// sweep, which hashes every pair only ever verified by sampling in full
// (they count as never hashed), and takes its location off.
func TestSampledPrimeMissesOneFlippedByteTheDeepSweepFindsIt(t *testing.T) {
	t.Parallel()
	w := world.New(t, &world.Options{Sampled: true})
	d := w.Deps
	s, id := cache(t, w, "flipped")
	_, other := cache(t, w, "other")
	// The prime is the database's first run: the blocks it reads of the
	// file are those of its sample id.
	pick := d.Sampler.Pick(primer.SampleID("1", id, bad), 128, 32)
	block := 1
	for slices.Contains(pick, block) {
		block++
	}
	flipped := bytes.Clone(w.Rel.Files[bad])
	flipped[block*16<<10+5] ^= 1
	s.Put(w.Rel, bad, flipped)

	rep := w.Prime(t)
	if rep.RunID != 1 {
		t.Fatalf("the prime is run %d, not the first: the test's picks are another run's", rep.RunID)
	}
	if sm := world.MirrorSums(t, rep, "flipped"); sm.State != "ok" || sm.FilesSampled != 4 {
		t.Fatalf("prime: %+v; want all 4 files passing by sampling (block %d, flipped, is not among %v)", sm, block, pick)
	}
	if got := w.Marks(t)[w.LocLin][id]; got != world.Good {
		t.Fatalf("after the prime the linux location is %+v, want good", got)
	}

	srep := w.Sweep(t, true)
	for _, name := range []string{"flipped", "other"} {
		if sm := world.SweepSums(t, srep, name); sm.Hashed != 4 {
			t.Errorf("deep sweep, %s: hashed %d, want all 4 pairs (only ever sampled: never hashed)", name, sm.Hashed)
		}
	}
	sm := world.SweepSums(t, srep, "flipped")
	if sm.Failures[checks.KindChecksumMismatch] != 1 || !strings.Contains(sm.FirstFailure, bad) {
		t.Errorf("deep sweep: %+v; want the flipped byte found as checksum_mismatch of %s", sm, bad)
	}
	marks := w.Marks(t)
	if got := marks[w.LocLin][id]; got != world.Off {
		t.Errorf("after the deep sweep the linux location is %+v, want taken off", got)
	}
	if got := marks[w.LocLin][other]; got != world.Good {
		t.Errorf("the other mirror's linux location is %+v, want good", got)
	}

	// A later sampled prime cannot clear what the hash found: the file is
	// verified in full again, and still fails.
	rep, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if sm := world.MirrorSums(t, rep, "flipped"); sm.Failures[checks.KindChecksumMismatch] != 1 || sm.FilesSampled != 3 {
		t.Errorf("forced prime after the deep sweep: %+v; want the mismatch found again (hashed in full), 3 files sampled", sm)
	}
}

// TestSampledPrimeOfAPullCache: a pull-through cache that keeps what it
// fetches for a range is primed with one byte per file and verified by
// sampling; what was learned is remembered, so the next prime does not try
// again. (cmd/sentry's nginx tests do the same against real caches.)
func TestSampledPrimeOfAPullCache(t *testing.T) {
	t.Parallel()
	w := world.New(t, &world.Options{Sampled: true})
	d := w.Deps
	ctx := context.Background()
	cache, err := localmirror.NewPullCache("cache", w.Master)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	id := w.AddMirror(t, "cache", cache.URL, &factory.MirrorSettingsOpts{PrimeMode: "pull"})
	for range 2 {
		rep, err := sentry.Prime(ctx, d, sentry.PrimeOptions{Release: "1.5", Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if sm := world.MirrorSums(t, rep, "cache"); sm.State != "ok" || sm.FilesSampled != 4 {
			t.Errorf("run %d: %+v; want 4 files sampled", rep.RunID, sm)
		}
		var by, reason string
		if err := w.Pool().QueryRow(ctx, `SELECT prime_by, reason FROM sentry_mirror_priming WHERE mirror_id = $1`, id).
			Scan(&by, &reason); err != nil {
			t.Fatal(err)
		}
		if by != "range" || !strings.Contains(reason, "next request was a hit") {
			t.Errorf("learned %q (%s), want range", by, reason)
		}
		var primed int
		if err := w.Pool().QueryRow(ctx, `SELECT count(*) FROM sentry_checks WHERE run_id = $1 AND sample_blocks = 32
			AND detail LIKE 'primed with a one-byte range%' AND cache_status LIKE '%after: X-Cache-Status: HIT'`, rep.RunID).Scan(&primed); err != nil {
			t.Fatal(err)
		}
		if primed != 4 {
			t.Errorf("run %d: %d files primed with one byte and a hit after, want 4", rep.RunID, primed)
		}
	}
	for _, p := range w.Rel.Paths() {
		if !cache.Has(w.Rel, p) {
			t.Errorf("the cache does not hold %s", p)
		}
	}
	// Learned once: the second prime did not write it again.
	var learned int
	if err := w.Pool().QueryRow(ctx, `SELECT count(*) FROM sentry_mirror_priming WHERE learned_at < (SELECT max(started_at) FROM sentry_runs)`).
		Scan(&learned); err != nil {
		t.Fatal(err)
	}
	if learned != 1 {
		t.Errorf("the second prime learned again")
	}
}
