package prime_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/realmirror"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/prime"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// startStaticNginx starts nginx serving tree (written by writeTree) as a
// mirror that holds its files; extra goes in the location block.
func startStaticNginx(t *testing.T, name, tree, extra string) *realmirror.Server {
	t.Helper()
	return realmirror.StartNginx(t, name, realmirror.NginxOptions{Root: filepath.Join(tree, "pub"), Extra: extra})
}

// startCacheNginx starts nginx as a pull-through cache of master;
// extra goes in the location block.
func startCacheNginx(t *testing.T, name string, master *localmirror.Server, extra string) *realmirror.Server {
	t.Helper()
	up, err := realmirror.Upstream(master.URL)
	if err != nil {
		t.Fatal(err)
	}
	return realmirror.StartNginx(t, name, realmirror.NginxOptions{Upstream: up, Extra: extra})
}

// TestSampledPrimeWithRealNginx primes with verify.mode sampled, in this
// process (so that the sampler's seed is fixed and what it reads is the
// same every time), four real nginx mirrors:
//   - a proxy_cache that keeps what it fetches for a range (nginx's
//     default): learned as such, primed with one byte per file, verified
//     by 32 of 128 blocks in one multi-range request, and every file a HIT
//     afterwards, fetched from its upstream once;
//   - a proxy_cache keyed by the Range header (it passes ranges upstream
//     and caches each range apart, so a one-byte range does not fill it):
//     learned as such, primed and verified with full GETs, every file a
//     HIT afterwards;
//   - a static nginx holding the release with an HTML page of the same
//     size in place of one file, caught at the prime, and one byte flipped
//     in another, which passes the prime and is caught by the next deep
//     sweep;
//   - a static nginx with max_ranges 0 (it ignores Range): verified in
//     full.
func TestSampledPrimeWithRealNginx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{}}
	for _, l := range []string{"en-US", "de", "fr"} {
		p := "linux-x86_64/" + l + "/firefox-1.5.tar.bz2"
		rel.Files[p] = localmirror.Content(p, 2<<20) // 128 blocks of 16 KiB
	}
	paths := rel.Paths()
	// Each cache has an upstream of its own, to count what it fetched.
	rangeUp, keyedUp := world.Master(t, rel), world.Master(t, rel)
	fills := startCacheNginx(t, "nginx-fills", rangeUp, "add_header X-Cache-Status $upstream_cache_status always;")
	keyed := startCacheNginx(t, "nginx-keyed", keyedUp, `proxy_set_header Range $http_range;
            proxy_cache_key "$uri $http_range";
            proxy_cache_valid 206 1d;
            add_header X-Cache-Status $upstream_cache_status always;`)
	html, flipped := paths[0], paths[1]
	tree := t.TempDir()
	for p, b := range rel.Files {
		switch p {
		case html:
			b = []byte(("<!DOCTYPE html><html><body>" + strings.Repeat("Not Found. ", len(b)/10))[:len(b)])
		case flipped:
			b = nil // below, once the mirror's id is known
		}
		writeTree(t, tree, rel.Dir+p, b)
	}
	static := startStaticNginx(t, "nginx-static", tree, "")
	plainTree := t.TempDir()
	for p, b := range rel.Files {
		writeTree(t, plainTree, rel.Dir+p, b)
	}
	noRange := startStaticNginx(t, "nginx-norange", plainTree, "max_ranges 0;")

	w := world.New(t, &world.Options{Release: rel, Sampled: true, Config: onRealServers})
	d, pool := w.Deps, w.Pool()
	addLinuxLocation(t, w)
	ids := map[string]int{}
	for _, m := range []struct {
		n    *realmirror.Server
		mode string
	}{{fills, "pull"}, {keyed, "pull"}, {static, "passive"}, {noRange, "passive"}} {
		ids[m.n.Name] = w.Mirror(t, &factory.MirrorOpts{Name: m.n.Name, BaseURL: m.n.BaseURL, Rating: factory.Ptr(50),
			Settings: &factory.MirrorSettingsOpts{PrimeMode: m.mode}})
	}
	// The flipped byte lies in a block the prime (the database's first
	// run) does not read of that file on that mirror.
	pick := d.Sampler.Pick(primer.SampleID("1", ids["nginx-static"], flipped), 128, 32)
	block := 1
	for slices.Contains(pick, block) {
		block++
	}
	fb := bytes.Clone(rel.Files[flipped])
	fb[block*16<<10+9] ^= 1
	writeTree(t, tree, rel.Dir+flipped, fb)

	rep, err := sentry.Prime(ctx, d, sentry.PrimeOptions{Release: "1.5"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RunID != 1 || rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("prime: run %d, %s (%s); want the first run, completed", rep.RunID, rep.Outcome, rep.Reason)
	}
	sums := map[string]prime.MirrorSums{}
	for _, m := range rep.Mirrors {
		sums[m.Name] = m
	}
	for name, want := range map[string]struct {
		ok, sampled int
		fail        checks.Kind
	}{
		"nginx-fills": {3, 3, ""}, "nginx-keyed": {3, 0, ""}, "nginx-static": {2, 2, checks.KindChecksumMismatch}, "nginx-norange": {3, 0, ""},
	} {
		s := sums[name]
		if s.FilesOK != want.ok || s.FilesSampled != want.sampled || (want.fail != "" && s.Failures[want.fail] != 1) {
			t.Errorf("%s: %+v; want %d verified, %d by sampling, failure %q", name, s, want.ok, want.sampled, want.fail)
		}
	}
	if s := sums["nginx-static"]; !strings.Contains(s.FirstFailure, html) || !strings.Contains(s.FirstFailure, "block 0 of 128") {
		t.Errorf("nginx-static: first failure %q, want the HTML page's first block", s.FirstFailure)
	}
	primings := map[string]string{}
	rows, err := pool.Query(ctx, `SELECT m.name, p.prime_by FROM sentry_mirror_priming p JOIN mirror_mirrors m ON m.id = p.mirror_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n, by string
		if err := rows.Scan(&n, &by); err != nil {
			t.Fatal(err)
		}
		primings[n] = by
	}
	if primings["nginx-fills"] != "range" || primings["nginx-keyed"] != "get" || len(primings) != 2 {
		t.Errorf("learned %v; want nginx-fills by range, nginx-keyed by get", primings)
	}

	// What nginx-fills was asked: one byte, then one multi-range request of
	// 32 blocks, per file; its upstream was asked for each file once.
	var touches, samples int
	for _, l := range fills.AccessLog(t) {
		switch {
		case len(l) >= 6 && l[2] == `"bytes=0-0"` && l[3] == "206" && l[4] == "1":
			touches++
		case len(l) >= 6 && strings.HasPrefix(l[2], `"bytes=0-16383,`) && l[3] == "206" && l[5] == "HIT":
			// 32 blocks of 16 KiB (neighbours merged into one range) and
			// multipart headers: a quarter of the file, and no more.
			if n, _ := strconv.Atoi(l[4]); n < 32*16<<10 || n > 32*16<<10+8<<10 {
				t.Errorf("nginx-fills sent %d bytes for a sample of 32 blocks", n)
			}
			samples++
		default:
			t.Errorf("nginx-fills was asked %v", l)
		}
	}
	if touches != 3 || samples != 3 {
		t.Errorf("nginx-fills: %d one-byte primes and %d samples from the cache, want 3 and 3", touches, samples)
	}
	if n := rangeUp.Stats().Requests; n != 3 {
		t.Errorf("nginx-fills fetched %d times from its upstream, want once per file", n)
	}
	// Every file is a HIT on both caches now.
	client := &http.Client{Timeout: 30 * time.Second}
	for _, m := range []*realmirror.Server{fills, keyed} {
		for _, p := range paths {
			resp, err := client.Get(primer.FileURL(m.BaseURL, rel.Dir, p))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, rel.Files[p]) || resp.Header.Get("X-Cache-Status") != "HIT" {
				t.Errorf("%s %s after the prime: %d, %d bytes, X-Cache-Status %q", m.Name, p, resp.StatusCode, len(body), resp.Header.Get("X-Cache-Status"))
			}
		}
	}
	var inFull int
	w.QueryRow(t, `SELECT count(*) FROM sentry_checks WHERE mirror_id = $1 AND hashed AND result = 'ok' AND sample_blocks IS NULL`,
		[]any{ids["nginx-norange"]}, &inFull)
	if inFull != 3 {
		t.Errorf("nginx-norange: %d files verified in full, want 3", inFull)
	}

	// The next deep sweep hashes every pair only ever sampled, and finds
	// the flipped byte.
	srep, err := sentry.Sweep(ctx, d, sentry.SweepOptions{Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range srep.Mirrors {
		if m.Name != "nginx-static" {
			continue
		}
		if m.Failures[checks.KindChecksumMismatch] != 2 || m.Hashed != 3 {
			t.Errorf("deep sweep of nginx-static: %+v; want 3 files hashed, 2 checksum mismatches (the page, the flipped byte)", m)
		}
	}
	var flippedOff int
	w.QueryRow(t, `SELECT count(*) FROM sentry_file_state WHERE mirror_id = $1 AND path = $2 AND result = 'checksum_mismatch'`,
		[]any{ids["nginx-static"], flipped}, &flippedOff)
	if flippedOff != 1 {
		t.Errorf("the flipped byte of %s was not found by the deep sweep", flipped)
	}
}

// writeTree writes body at path under dir.
func writeTree(t *testing.T, dir, path string, body []byte) {
	t.Helper()
	full := filepath.Join(dir, "pub", filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if body == nil {
		return
	}
	if err := os.WriteFile(full, body, 0o644); err != nil {
		t.Fatal(err)
	}
}
