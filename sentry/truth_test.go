package sentry_test

// Truth when releases and mirrors change: the marks the redirector reads
// stay true when files are withdrawn or respun, when mirrors go and come
// back, fix a file, or are new; every language a release holds is checked;
// and every view says the same word of a mirror.

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/realmirror"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// publish puts body at path on the master (nil removes it) and the
// manifest that says so: a respin, a new file, or a withdrawal.
func (b *bundle) publish(path string, body []byte) {
	if body == nil {
		delete(b.rel.Files, path)
		b.master.Remove(b.rel, path)
	} else {
		b.rel.Files[path] = body
		b.master.Put(b.rel, path, body)
	}
	b.master.Put(b.rel, "SHA256SUMS", b.rel.Manifest())
}

// offered is what the redirector offers for a location: the mirrors it
// tries first (healthy) and those it falls back to.
func (b *bundle) offered(t *testing.T, location int) (first, fallback []int) {
	t.Helper()
	return b.redirector(t, location, true), b.redirector(t, location, false)
}

// checkDetails returns the detail of every recorded check a run made of
// path, by mirror name.
func (b *bundle) checkDetails(t *testing.T, run int64, path string) map[string][]string {
	t.Helper()
	rows, err := b.st.Pool().Query(context.Background(), `SELECT m.name, c.result || ': ' || c.detail
		FROM sentry_checks c JOIN mirror_mirrors m ON m.id = c.mirror_id WHERE c.run_id = $1 AND c.path = $2 ORDER BY c.id`, run, path)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var name, d string
		if err := rows.Scan(&name, &d); err != nil {
			t.Fatal(err)
		}
		out[name] = append(out[name], d)
	}
	return out
}

// pullSettings makes a mirror a pull-through cache, purgeable when method
// is set.
func (b *bundle) pullSettings(t *testing.T, id int, method, url string) {
	t.Helper()
	if _, err := b.st.Pool().Exec(context.Background(), `INSERT INTO sentry_mirror_settings (mirror_id, prime_mode, purge_method, purge_url)
		VALUES ($1, 'pull', nullif($2, ''), nullif($3, ''))`, id, method, url); err != nil {
		t.Fatal(err)
	}
}

func TestWithdrawnFileIsOfferedNowhere(t *testing.T) {
	d, b := setup(t)
	_, good1 := b.static(t, "good1")
	_, good2 := b.static(t, "good2")
	gone, goneID := b.static(t, "gone")
	flaky, flakyID := b.static(t, "flaky")
	down := failing(flaky)
	primeRelease(t, d)
	withdrawn := "win32/de/Firefox Setup 1.5.exe"
	// One mirror answers 404 for the file, another goes down: its rows
	// unhealthy, the redirector's fallback.
	gone.Remove(b.rel, withdrawn)
	down.Store(true)
	sweepNow(t, d, false)
	sweepNow(t, d, false)
	if first, fallback := b.offered(t, b.locWin); !slices.Equal(first, sorted(good1, good2)) || !slices.Equal(fallback, []int{flakyID}) {
		t.Fatalf("before the withdrawal: offered %v, fallback %v; want the good mirrors, the down one as fallback", first, fallback)
	}

	// The file leaves the master and the manifest; its location stays.
	original := b.rel.Files[withdrawn]
	b.publish(withdrawn, nil)
	rep := sweepNow(t, d, false)
	if first, fallback := b.offered(t, b.locWin); len(first)+len(fallback) != 0 {
		t.Errorf("withdrawn location offered on %v, fallback %v; want no mirror at all", first, fallback)
	}
	if len(rep.Withdrawn) != 1 || rep.Withdrawn[0].LocationID != b.locWin || !strings.Contains(rep.Withdrawn[0].Reason, withdrawn) {
		t.Errorf("sweep report's withdrawn locations: %+v; want the win32 location, naming the file", rep.Withdrawn)
	}
	// No mirror is degraded by it: it is off on every one.
	if s := sweepSums(t, rep, "good1"); s.Condition != "up" || s.LocationsOff != 0 {
		t.Errorf("good1 after the withdrawal: %s with %d locations off %v; want up", s.Condition, s.LocationsOff, s.OffLocations)
	}
	if s := sweepSums(t, rep, "gone"); s.Condition != "up" {
		t.Errorf("gone (404 only for the withdrawn file): %s %v; want up", s.Condition, s.OffLocations)
	}
	// A re-prime reports it and offers it nowhere either.
	prep := primeRelease(t, d)
	if len(prep.Unresolved) != 1 || prep.Unresolved[0].LocationID != b.locWin || !prep.Unresolved[0].Withdrawn {
		t.Errorf("prime's unresolved locations: %+v; want the withdrawn win32 location", prep.Unresolved)
	}
	if first, fallback := b.offered(t, b.locWin); len(first)+len(fallback) != 0 {
		t.Errorf("after the re-prime the withdrawn location is offered on %v, fallback %v", first, fallback)
	}
	if first, _ := b.offered(t, b.locLin); !slices.Equal(first, sorted(good1, good2, goneID)) {
		t.Errorf("the linux location is offered on %v; want the three mirrors that are up", first)
	}

	// The file comes back as it was: withdrawn no more, hashed again (what
	// sentry knew of it was forgotten), offered where it is right.
	b.publish(withdrawn, original)
	rep = sweepNow(t, d, false)
	if len(rep.Withdrawn) != 0 {
		t.Errorf("withdrawn locations after the file came back: %+v", rep.Withdrawn)
	}
	if first, fallback := b.offered(t, b.locWin); !slices.Equal(first, sorted(good1, good2)) || len(fallback) != 0 {
		t.Errorf("the file back: offered on %v, fallback %v; want the two good mirrors (one lacks it, one is down)", first, fallback)
	}
}

// TestRespin: a file of a primed release changes on the master (same
// size, other bytes). The next sweep sees the new manifest, takes the
// file's location off every mirror, hashes it everywhere and offers it
// again only where the new bytes are: a mirror that synced them, and a
// Varnish cache that served the old ones until sentry purged it. A mirror
// that kept the old bytes and an nginx cache that cannot be purged are
// reported as serving the previous version.
func TestRespin(t *testing.T) {
	d, b := setup(t)
	fresh, freshID := b.static(t, "fresh")
	_, _ = b.static(t, "old")
	up, err := realmirror.Upstream(b.master.URL)
	if err != nil {
		t.Fatal(err)
	}
	nginx := realmirror.StartNginx(t, "nginx", realmirror.NginxOptions{Upstream: up})
	nginxID := b.addMirror(t, nginx.Name, nginx.BaseURL, "pull", "", 0)
	varnish := realmirror.StartVarnish(t, "varnish", up)
	varnishID := b.addMirror(t, varnish.Name, varnish.BaseURL, "", "", 0)
	b.pullSettings(t, varnishID, "PURGE", "{url}")
	if rep := primeRelease(t, d); rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("prime: %s %s", rep.Outcome, rep.Reason)
	}
	if first, _ := b.offered(t, b.locWin); len(first) != 4 {
		t.Fatalf("after the prime the win32 location is offered on %v; want all four mirrors", first)
	}

	p := "win32/en-US/Firefox Setup 1.5.exe"
	respun := localmirror.Flip(b.rel.Files[p])
	b.publish(p, respun)
	fresh.Put(b.rel, p, respun)

	rep := sweepNow(t, d, false)
	if first, fallback := b.offered(t, b.locWin); !slices.Equal(first, sorted(freshID, varnishID)) || len(fallback) != 0 {
		t.Errorf("after the respin the win32 location is offered on %v, fallback %v; want fresh and the purged Varnish only", first, fallback)
	}
	details := b.checkDetails(t, rep.RunID, p)
	for _, name := range []string{"old", "nginx"} {
		if got := details[name]; len(got) != 1 || !strings.Contains(got[0], "serves the previous version (stale)") {
			t.Errorf("%s's check of the respun file: %q; want it reported as serving the previous version", name, got)
		}
	}
	if got := details["varnish"]; len(got) != 1 || !strings.HasPrefix(got[0], "ok: ") || !strings.Contains(got[0], "purged") {
		t.Errorf("Varnish's check of the respun file: %q; want ok after a purge", got)
	}
	// The Varnish cache serves the new bytes now, to anyone.
	resp, err := http.Get(primer.FileURL(varnish.BaseURL, b.rel.Dir, p))
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, len(respun)+1)
	n, _ := io.ReadFull(resp.Body, body)
	resp.Body.Close()
	if !slices.Equal(body[:n], respun) {
		t.Errorf("Varnish serves %d bytes that are not the respun file after the purge", n)
	}
	// The nginx cache keeps the previous version; so does its mark.
	if got := b.marks(t)[b.locWin][nginxID]; got != (lmmRow{false, false}) {
		t.Errorf("nginx (stale, not purgeable): %+v, want off", got)
	}

	// Another respin, then a re-prime: exactly the changed file is
	// fetched again on the mirror that holds everything right, no --force.
	q := "linux-x86_64/de/firefox-1.5.tar.bz2"
	b.publish(q, localmirror.Flip(b.rel.Files[q]))
	fresh.Put(b.rel, q, b.rel.Files[q])
	prep := primeRelease(t, d)
	var fetched []string
	for _, c := range b.seen.all() {
		if c.RunID == prep.RunID && c.MirrorID == freshID && c.Path != "" {
			fetched = append(fetched, c.Path)
		}
	}
	if !slices.Equal(fetched, []string{q}) {
		t.Errorf("the re-prime fetched %q on fresh; want only the respun %q", fetched, q)
	}
	if s := mirrorSums(t, prep, "fresh"); s.Resumed != 3 || s.FilesOK != 4 {
		t.Errorf("fresh in the re-prime: %+v; want 3 files resumed, 4 verified", s)
	}
}

// TestReturningMirrorOfferedOnlyForFilesHashedSince: a real nginx mirror
// goes down (maintenance: 503), and while it is down a file is replaced by
// corrupt bytes of the same size and mtime — nginx's ETag and
// Last-Modified do not change, a conditional request is answered 304. When
// it comes back, the file is hashed before it is offered, and never
// offered; the same holds for a mirror the admin switched off and on.
func TestReturningMirrorOfferedOnlyForFilesHashedSince(t *testing.T) {
	d, b := setup(t)
	b.static(t, "good1")
	b.static(t, "good2")
	b.static(t, "good3")
	root := t.TempDir()
	for p, body := range b.rel.Files {
		full := filepath.Join(root, filepath.FromSlash(b.rel.Dir+p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nginx := realmirror.StartNginx(t, "nginx", realmirror.NginxOptions{Root: root})
	id := b.addMirror(t, nginx.Name, nginx.BaseURL, "", "", 0)
	primeRelease(t, d)
	if m := b.marks(t); m[b.locWin][id] != (lmmRow{true, true}) || m[b.locLin][id] != (lmmRow{true, true}) {
		t.Fatalf("after the prime: %+v %+v, want both locations good on nginx", m[b.locWin][id], m[b.locLin][id])
	}
	// corrupt replaces a file by other bytes of the same size and mtime,
	// and shows that nginx's validators stand still.
	corrupt := func(p string) {
		t.Helper()
		full := filepath.Join(root, filepath.FromSlash(b.rel.Dir+p))
		st, err := os.Stat(full)
		if err != nil {
			t.Fatal(err)
		}
		url := primer.FileURL(nginx.BaseURL, b.rel.Dir, p)
		before, err := http.Head(url)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, localmirror.Flip(b.rel.Files[p]), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(full, st.ModTime(), st.ModTime()); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodHead, url, nil)
		req.Header.Set("If-None-Match", before.Header.Get("ETag"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if before.StatusCode != http.StatusOK || resp.StatusCode != http.StatusNotModified {
			t.Fatalf("nginx answered %d, then %d to If-None-Match after the swap; want 200, then 304", before.StatusCode, resp.StatusCode)
		}
	}
	notOffered := func(when string, location int) {
		t.Helper()
		first, fallback := b.offered(t, location)
		if slices.Contains(first, id) || slices.Contains(fallback, id) {
			t.Errorf("%s: nginx offered for the corrupt file's location (%v, fallback %v)", when, first, fallback)
		}
	}

	// Down, corrupted while down, back.
	nginx.Maintenance(t, true)
	sweepNow(t, d, false)
	if s := sweepSums(t, sweepNow(t, d, false), "nginx"); s.State != "down" {
		t.Fatalf("nginx under maintenance: %+v, want down", s)
	}
	win := "win32/en-US/Firefox Setup 1.5.exe"
	nginx.Maintenance(t, false)
	corrupt(win)
	for i, want := range []string{"down", "up"} {
		s := sweepSums(t, sweepNow(t, d, false), "nginx")
		if s.State != want {
			t.Fatalf("sweep %d after the return: %+v, want %s", i+1, s, want)
		}
		if i == 0 && (s.Hashed != 4 || s.Failures["checksum_mismatch"] != 1) {
			t.Errorf("first sweep after the return: %+v; want every file hashed (verified before it went down), the corrupt one found", s)
		}
		notOffered("back from down, sweep "+want, b.locWin)
	}
	if got := b.marks(t)[b.locLin][id]; got != (lmmRow{true, true}) {
		t.Errorf("the intact location once nginx is up again: %+v, want good (hashed since)", got)
	}

	// Switched off by the admin, corrupted, switched on.
	setActive := func(on bool) {
		t.Helper()
		if _, err := b.st.Pool().Exec(context.Background(), `UPDATE mirror_mirrors SET active = $2 WHERE id = $1`, id, on); err != nil {
			t.Fatal(err)
		}
	}
	setActive(false)
	sweepNow(t, d, false)
	lin := "linux-x86_64/de/firefox-1.5.tar.bz2"
	corrupt(lin)
	setActive(true)
	// Before any sweep: the redirector does not offer what sentry has not
	// verified since.
	notOffered("switched on again, before a sweep", b.locLin)
	s := sweepSums(t, sweepNow(t, d, false), "nginx")
	if s.Failures["checksum_mismatch"] != 1 || s.Hashed != 3 {
		t.Errorf("first sweep after the switch: %+v; want the files hashed (the known-bad one aside), the new corrupt one found", s)
	}
	notOffered("switched on again, after a sweep", b.locLin)
}

// TestFixedMissingFileOfferedAfterOneSweep: a mirror that lacked a file
// and now holds it is hashed and offered again by the next light sweep.
func TestFixedMissingFileOfferedAfterOneSweep(t *testing.T) {
	d, b := setup(t)
	b.static(t, "good")
	m, id := b.static(t, "fixer")
	p := "linux-x86_64/de/firefox-1.5.tar.bz2"
	m.Remove(b.rel, p)
	primeRelease(t, d)
	if got := b.marks(t)[b.locLin][id]; got != (lmmRow{false, false}) {
		t.Fatalf("after the prime: %+v, want the location off", got)
	}
	m.Put(b.rel, p, b.rel.Files[p])
	s := sweepSums(t, sweepNow(t, d, false), "fixer")
	if s.Hashed != 1 || s.Failed != 0 {
		t.Errorf("light sweep: %+v; want the fixed file hashed", s)
	}
	if got := b.marks(t)[b.locLin][id]; got != (lmmRow{true, true}) {
		t.Errorf("after one light sweep: %+v, want the location offered again", got)
	}
}

// TestNewMirrorMarkedAfterOneSweep: a mirror added to mirror_mirrors after
// the prime gets its map rows for the live release at the next sweep —
// good, its files hashed — and, where sweep.catch_up_bytes does not cover
// them all, the rest withheld (rows, off) until later sweeps hash them.
func TestNewMirrorMarkedAfterOneSweep(t *testing.T) {
	d, b := setup(t)
	b.static(t, "old")
	primeRelease(t, d)
	_, id := b.static(t, "new")
	s := sweepSums(t, sweepNow(t, d, false), "new")
	if s.Hashed != 4 {
		t.Errorf("first sweep of the new mirror: %+v, want its 4 files hashed", s)
	}
	if m := b.marks(t); m[b.locWin][id] != (lmmRow{true, true}) || m[b.locLin][id] != (lmmRow{true, true}) {
		t.Errorf("new mirror after one sweep: win32 %+v, linux %+v; want both good", m[b.locWin][id], m[b.locLin][id])
	}

	// A budget of one byte: one file a sweep.
	d.Config.Sweep.CatchUpBytes = 1
	_, late := b.static(t, "late")
	s = sweepSums(t, sweepNow(t, d, false), "late")
	m := b.marks(t)
	if s.Hashed != 1 || s.Withheld != 2 || m[b.locWin][late] != (lmmRow{false, false}) || m[b.locLin][late] != (lmmRow{false, false}) {
		t.Errorf("first sweep within a tiny budget: %+v, marks %+v %+v; want one file hashed, both locations withheld (rows, off)",
			s, m[b.locWin][late], m[b.locLin][late])
	}
	for range 3 {
		sweepNow(t, d, false)
	}
	if m := b.marks(t); m[b.locWin][late] != (lmmRow{true, true}) || m[b.locLin][late] != (lmmRow{true, true}) {
		t.Errorf("after four sweeps of a file each: %+v %+v, want both good", m[b.locWin][late], m[b.locLin][late])
	}
}
