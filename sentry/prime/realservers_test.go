package prime_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/rangeserver"
	"github.com/mirrorsentry/sentry/internal/testkit/realmirror"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/prime"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// The release of these tests: three files of 129, 96 and 65 blocks of 16
// KiB (the last one short), 40 of which a sampled check reads.
const (
	blockSize    = 16 << 10
	sampleBlocks = 40
)

// served starts a server answering ranges as b says, serving files (URL
// path → contents), and returns its host:port.
func served(t *testing.T, files map[string][]byte, b rangeserver.Behaviour) string {
	t.Helper()
	srv := httptest.NewServer(&rangeserver.Server{B: b, Files: files})
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// onRealServers is the configuration of the tests on real servers, on a
// loaded machine: the configuration's own timeouts, the retries of a real
// deployment, one product.
func onRealServers(cfg *config.Config) {
	def := config.Default()
	cfg.Checks = def.Checks
	cfg.Releases.Products = []string{"Firefox-{release}"}
	cfg.Checks.Contact = "https://example.org/sentry-e2e"
	cfg.Checks.PerMirrorRate = 100_000
	cfg.Checks.Retries = 1
	cfg.Checks.RetryWaitMin = config.Duration(50 * time.Millisecond)
	cfg.Checks.RetryWaitMax = config.Duration(200 * time.Millisecond)
	cfg.Prime = def.Prime
	cfg.Prime.PollInterval = config.Duration(10 * time.Millisecond)
	cfg.Prime.PollMax = config.Duration(50 * time.Millisecond)
}

// addLinuxLocation registers product Firefox-1.5 (en-US, de, fr) with its
// one location, the linux-x86_64 build.
func addLinuxLocation(t *testing.T, w *world.World) {
	t.Helper()
	ctx, pool := context.Background(), w.Pool()
	product := factory.Product(ctx, t, pool, &factory.ProductOpts{Name: "Firefox-1.5", Langs: []string{"en-US", "de", "fr"}})
	factory.Location(ctx, t, pool, &factory.LocationOpts{ProductID: product.ID, OSID: factory.OS(ctx, t, pool, &factory.OSOpts{Name: "linux"}).ID,
		Path: "/firefox/releases/1.5/linux-x86_64/:lang/firefox-1.5.tar.bz2"})
}

// family is one kind of server the mirrors run: it starts a mirror
// serving files (URL path → contents) and returns its base URL.
type family struct {
	name  string
	mode  string // prime mode: pull for caches, passive for servers of a tree
	start func(t *testing.T, name string, files map[string][]byte) string
	// ranges is what sampled checks learn of its server (a row of
	// sentry_mirror_ranges, on the mirror of good copies); primedBy how
	// a cache is learned to be primed.
	ranges   checks.RangeWay
	primedBy string
}

// writeFiles writes files (URL path under /pub/ → contents) under a new
// directory, which it returns.
func writeFiles(t *testing.T, files map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	for p, b := range files {
		full := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(p, "/pub/")))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestSampledVerificationOnRealServers primes a release with verify.mode
// sampled on the servers mirrors run — real lighttpd (the first 10 ranges
// of a request), real Varnish (416 to several ranges), real Squid with
// range_offset_limit -1 (MISS until a one-byte request's fill is in), and
// test servers answering a prefix of the ranges, coalescing neighbours,
// and 416 to several ranges — each with a mirror of good copies and one of
// bad copies of the same size (30% of the blocks overwritten, an HTML
// page, one flipped byte in a block the prime does not read), then sweeps
// them deep. Good copies are offered, verified by sampling; the 30% and
// the HTML page are caught at the prime, the flipped byte by the deep
// sweep; no mirror is judged down for how its server answers ranges, what
// was learned of each server is kept, and the caches are learned to fill
// on a range.
func TestSampledVerificationOnRealServers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{}}
	sizes := map[string]int{"en-US": 2<<20 + 12345, "de": 3 << 19, "fr": 1<<20 + 999}
	for l, n := range sizes {
		p := "linux-x86_64/" + l + "/firefox-1.5.tar.bz2"
		rel.Files[p] = localmirror.Content(p, n)
	}
	corrupt, html, flipped := "linux-x86_64/en-US/firefox-1.5.tar.bz2", "linux-x86_64/de/firefox-1.5.tar.bz2", "linux-x86_64/fr/firefox-1.5.tar.bz2"

	upstream := func(t *testing.T, files map[string][]byte) string { return served(t, files, rangeserver.Behaviour{}) }
	families := []family{
		{name: "lighttpd", mode: "passive", ranges: checks.RangeWay{MaxRanges: 10}, start: func(t *testing.T, name string, files map[string][]byte) string {
			return realmirror.StartLighttpd(t, name, writeFiles(t, files)).BaseURL
		}},
		// No range honoured: files read in full (the flipped byte found
		// at the prime).
		{name: "python", mode: "passive", ranges: checks.RangeWay{InFull: true}, start: func(t *testing.T, name string, files map[string][]byte) string {
			return realmirror.StartPythonHTTP(t, name, writeFiles(t, files)).BaseURL
		}},
		{name: "varnish", mode: "pull", ranges: checks.RangeWay{MaxRanges: 1}, primedBy: "range", start: func(t *testing.T, name string, files map[string][]byte) string {
			return realmirror.StartVarnish(t, name, upstream(t, files)).BaseURL
		}},
		{name: "squid", mode: "pull", primedBy: "range", start: func(t *testing.T, name string, files map[string][]byte) string {
			return realmirror.StartSquid(t, name, realmirror.SquidOptions{Upstream: upstream(t, files), RangeOffsetLimit: "-1"}).BaseURL
		}},
		{name: "prefix", mode: "passive", ranges: checks.RangeWay{MaxRanges: 5}, start: func(t *testing.T, name string, files map[string][]byte) string {
			return "http://" + served(t, files, rangeserver.Behaviour{MaxParts: 5}) + "/pub"
		}},
		{name: "coalescing", mode: "passive", start: func(t *testing.T, name string, files map[string][]byte) string {
			return "http://" + served(t, files, rangeserver.Behaviour{Coalesce: blockSize}) + "/pub"
		}},
		{name: "refusing", mode: "passive", ranges: checks.RangeWay{MaxRanges: 1}, start: func(t *testing.T, name string, files map[string][]byte) string {
			return "http://" + served(t, files, rangeserver.Behaviour{RefuseMulti: true}) + "/pub"
		}},
	}

	w := world.New(t, &world.Options{Release: rel, Sampled: true, Config: func(cfg *config.Config) {
		onRealServers(cfg)
		cfg.Verify.SampleBlocks = sampleBlocks
	}})
	d, st := w.Deps, w.Store
	addLinuxLocation(t, w)
	ids := map[string]int{}
	for _, f := range families {
		for _, kind := range []string{"good", "bad"} {
			name := f.name + "-" + kind
			// Its server is started below, once the id is known.
			ids[name] = w.Mirror(t, &factory.MirrorOpts{Name: name, BaseURL: "http://127.0.0.1:1/pub", Rating: factory.Ptr(50),
				Settings: &factory.MirrorSettingsOpts{PrimeMode: f.mode}})
		}
	}
	// Each mirror of bad copies has its own: the flipped byte lies in a
	// block the prime (the database's first run) does not read of that
	// file on that mirror.
	badFiles := func(id int) map[string][]byte {
		out := map[string][]byte{}
		for p, b := range rel.Files {
			switch p {
			case corrupt:
				b = overwrite30(b)
			case html:
				b = []byte(("<!DOCTYPE html><html><head><title>Not Found</title></head><body>" + strings.Repeat("Not Found. ", len(b)/10))[:len(b)])
			case flipped:
				pick := d.Sampler.Pick(primer.SampleID("1", id, p), checks.BlockCount(int64(len(b)), blockSize), sampleBlocks)
				block := 1
				for slices.Contains(pick, block) {
					block++
				}
				b = bytes.Clone(b)
				b[block*blockSize+77] ^= 1
			}
			out["/pub"+rel.Dir+p] = b
		}
		return out
	}
	goodFiles := map[string][]byte{}
	for p, b := range rel.Files {
		goodFiles["/pub"+rel.Dir+p] = b
	}
	for _, f := range families {
		for _, kind := range []string{"good", "bad"} {
			name := f.name + "-" + kind
			files := goodFiles
			if kind == "bad" {
				files = badFiles(ids[name])
			}
			w.Exec(t, `UPDATE mirror_mirrors SET baseurl = $1 WHERE id = $2`, f.start(t, name, files), ids[name])
		}
	}

	rep := w.Prime(t)
	if rep.RunID != 1 || rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("prime: run %d, %s (%s); want the first run, completed", rep.RunID, rep.Outcome, rep.Reason)
	}
	sums := map[string]prime.MirrorSums{}
	for _, m := range rep.Mirrors {
		sums[m.Name] = m
		t.Logf("prime, %s: %s, %d verified (%d by sampling), failures %v, %.2fs", m.Name, m.State, m.FilesOK, m.FilesSampled, m.Failures, m.Seconds)
	}
	for _, f := range families {
		good, bad := sums[f.name+"-good"], sums[f.name+"-bad"]
		sampled, caught := 3, 2
		if f.ranges.InFull {
			sampled, caught = 0, 3
		}
		if good.State != "ok" || good.FilesOK != 3 || good.FilesSampled != sampled {
			t.Errorf("%s, good copies: %s, %d verified, %d by sampling (%s); want all 3, %d by sampling", f.name, good.State, good.FilesOK, good.FilesSampled, good.FirstFailure, sampled)
		}
		if bad.State != "partial" || bad.FilesOK != 3-caught || bad.Failures[checks.KindChecksumMismatch] != caught || len(bad.Failures) != 1 {
			t.Errorf("%s, bad copies: %s, %d verified, failures %v (%s); want the 30%% and the HTML page caught (and the flipped byte when read in full)",
				f.name, bad.State, bad.FilesOK, bad.Failures, bad.FirstFailure)
		}
	}
	var caught int
	w.QueryRow(t, `SELECT count(*) FROM sentry_file_state s JOIN mirror_mirrors m ON m.id = s.mirror_id
		WHERE m.name LIKE '%-bad' AND s.result = 'checksum_mismatch' AND s.path IN ($1, $2)`, []any{corrupt, html}, &caught)
	if caught != 2*len(families) {
		t.Errorf("%d bad copies caught at the prime, want %d", caught, 2*len(families))
	}

	// What was learned of each server, and how each cache is primed.
	ways, err := st.RangeWays(ctx)
	if err != nil {
		t.Fatal(err)
	}
	primings, err := st.Primings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		id := ids[f.name+"-good"]
		t.Logf("%s: ranges %q (%s); primed by %q (%s)", f.name, ways[id].Way, ways[id].Reason, primings[id].By, primings[id].Reason)
		if got := ways[id]; got.Way != f.ranges {
			t.Errorf("%s: learned %q (%s), want %q", f.name, got.Way, got.Reason, f.ranges)
		}
		if got := primings[id]; got.By != f.primedBy {
			t.Errorf("%s: primed by %q (%s), want %q", f.name, got.By, got.Reason, f.primedBy)
		}
	}

	// The next deep sweep hashes every pair only ever sampled, and finds
	// the flipped bytes.
	for _, m := range w.Sweep(t, true).Mirrors {
		want, hashed := 0, 3
		if strings.HasSuffix(m.Name, "-bad") {
			want = 3
		}
		if strings.HasPrefix(m.Name, "python-") {
			// Hashed in full at the prime: the files the prime found
			// wrong are hashed again, the others in their turn.
			hashed = m.Hashed
		}
		if m.Hashed != hashed || m.Failures[checks.KindChecksumMismatch] != want || m.SweepFailed {
			t.Errorf("deep sweep of %s: %d hashed, failures %v, failed %v; want 3 hashed, %d checksum mismatches", m.Name, m.Hashed, m.Failures, m.SweepFailed, want)
		}
	}
	var found int
	w.QueryRow(t, `SELECT count(*) FROM sentry_file_state s JOIN mirror_mirrors m ON m.id = s.mirror_id
		WHERE m.name LIKE '%-bad' AND s.result = 'checksum_mismatch' AND s.path = $1`, []any{flipped}, &found)
	if found != len(families) {
		t.Errorf("the flipped byte found on %d mirrors, want %d", found, len(families))
	}

	// The next prime asks each server the way learned: no 416, no part
	// left out.
	rep, err = sentry.Prime(ctx, d, sentry.PrimeOptions{Release: "1.5", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if !f.ranges.Known() || f.ranges.InFull {
			continue
		}
		var asked, known int
		w.QueryRow(t, `SELECT count(*), count(*) FILTER (WHERE detail LIKE '%requests: ' || $1)
			FROM sentry_checks WHERE run_id = $2 AND mirror_id = $3 AND sample_blocks IS NOT NULL`,
			[]any{f.ranges.String(), rep.RunID, ids[f.name+"-good"]}, &asked, &known)
		if asked != 3 || known != 3 {
			t.Errorf("%s: %d of %d sampled checks of the next prime asked %q", f.name, known, asked, f.ranges)
		}
	}

	// No mirror is down; the good ones are offered, the bad ones not.
	rows, err := st.Pool().Query(ctx, `SELECT m.name, coalesce(s.state, ''), bool_and(l.active) FROM mirror_mirrors m
		LEFT JOIN sentry_mirror_state s ON s.mirror_id = m.id
		LEFT JOIN mirror_location_mirror_map l ON l.mirror_id = m.id GROUP BY 1, 2 ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name, state string
		var active *bool
		if err := rows.Scan(&name, &state, &active); err != nil {
			t.Fatal(err)
		}
		n++
		want := strings.HasSuffix(name, "-good")
		if state == "down" || active == nil || *active != want {
			t.Errorf("%s: state %q, offered %v; want not down, offered %v", name, state, active, want)
		}
	}
	if n != 2*len(families) {
		t.Errorf("%d mirrors, want %d", n, 2*len(families))
	}
}

// overwrite30 overwrites 30% of a file's blocks (every block i of the
// middle with i*7 % 10 < 3), leaving the first and the last alone: only
// the random picks can find them.
func overwrite30(b []byte) []byte {
	c := bytes.Clone(b)
	n := (len(b) + blockSize - 1) / blockSize
	for i := 1; i < n-1; i++ {
		if i*7%10 < 3 {
			copy(c[i*blockSize:], bytes.Repeat([]byte{0x5a}, blockSize))
		}
	}
	return c
}
