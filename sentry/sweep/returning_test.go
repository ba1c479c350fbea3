package sweep_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/realmirror"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// TestReturningMirrorOfferedOnlyForFilesHashedSince: a real nginx mirror
// goes down (maintenance: 503), and while it is down a file is replaced by
// corrupt bytes of the same size and mtime — nginx's ETag and
// Last-Modified do not change, a conditional request is answered 304. When
// it comes back, the file is hashed before it is offered, and never
// offered; the same holds for a mirror the admin switched off and on.
func TestReturningMirrorOfferedOnlyForFilesHashedSince(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	w.Static(t, "good1")
	w.Static(t, "good2")
	w.Static(t, "good3")
	root := t.TempDir()
	for p, body := range w.Rel.Files {
		full := filepath.Join(root, filepath.FromSlash(w.Rel.Dir+p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nginx := realmirror.StartNginx(t, "nginx", realmirror.NginxOptions{Root: root})
	id := w.AddMirror(t, nginx.Name, nginx.BaseURL, nil)
	w.Prime(t)
	if m := w.Marks(t); m[w.LocWin][id] != world.Good || m[w.LocLin][id] != world.Good {
		t.Fatalf("after the prime: %+v %+v, want both locations good on nginx", m[w.LocWin][id], m[w.LocLin][id])
	}
	// corrupt replaces a file by other bytes of the same size and mtime,
	// and shows that nginx's validators stand still.
	corrupt := func(p string) {
		t.Helper()
		full := filepath.Join(root, filepath.FromSlash(w.Rel.Dir+p))
		st, err := os.Stat(full)
		if err != nil {
			t.Fatal(err)
		}
		url := primer.FileURL(nginx.BaseURL, w.Rel.Dir, p)
		before, err := http.Head(url)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, localmirror.Flip(w.Rel.Files[p]), 0o644); err != nil {
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
		first, fallback := w.Offered(t, location)
		if slices.Contains(first, id) || slices.Contains(fallback, id) {
			t.Errorf("%s: nginx offered for the corrupt file's location (%v, fallback %v)", when, first, fallback)
		}
	}

	// Down, corrupted while down, back.
	nginx.Maintenance(t, true)
	w.Sweep(t, false)
	if s := world.SweepSums(t, w.Sweep(t, false), "nginx"); s.State != "down" {
		t.Fatalf("nginx under maintenance: %+v, want down", s)
	}
	win := "win32/en-US/Firefox Setup 1.5.exe"
	nginx.Maintenance(t, false)
	corrupt(win)
	for i, want := range []string{"down", "up"} {
		s := world.SweepSums(t, w.Sweep(t, false), "nginx")
		if s.State != want {
			t.Fatalf("sweep %d after the return: %+v, want %s", i+1, s, want)
		}
		if i == 0 && (s.Hashed != 4 || s.Failures["checksum_mismatch"] != 1) {
			t.Errorf("first sweep after the return: %+v; want every file hashed (verified before it went down), the corrupt one found", s)
		}
		notOffered("back from down, sweep "+want, w.LocWin)
	}
	if got := w.Marks(t)[w.LocLin][id]; got != world.Good {
		t.Errorf("the intact location once nginx is up again: %+v, want good (hashed since)", got)
	}

	// Switched off by the admin, corrupted, switched on.
	setActive := func(on bool) {
		t.Helper()
		if _, err := w.Pool().Exec(context.Background(), `UPDATE mirror_mirrors SET active = $2 WHERE id = $1`, id, on); err != nil {
			t.Fatal(err)
		}
	}
	setActive(false)
	w.Sweep(t, false)
	lin := "linux-x86_64/de/firefox-1.5.tar.bz2"
	corrupt(lin)
	setActive(true)
	// Before any sweep: the redirector does not offer what sentry has not
	// verified since.
	notOffered("switched on again, before a sweep", w.LocLin)
	s := world.SweepSums(t, w.Sweep(t, false), "nginx")
	if s.Failures["checksum_mismatch"] != 1 || s.Hashed != 3 {
		t.Errorf("first sweep after the switch: %+v; want the files hashed (the known-bad one aside), the new corrupt one found", s)
	}
	notOffered("switched on again, after a sweep", w.LocLin)
}
