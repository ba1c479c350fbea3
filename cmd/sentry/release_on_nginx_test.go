package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/realmirror"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/demo/faultmirror"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// TestEndToEndWithNginx runs the built binary as a user would — db migrate,
// prime --release, report --format json — against a master, three real
// nginx proxy_cache mirrors and a mirror serving one file corrupt, and
// checks the bouncer marks, the report, and that nginx really holds the
// files afterwards.
func TestEndToEndWithNginx(t *testing.T) {
	t.Parallel()
	langs := []string{"en-US", "de", "fr"}
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{}}
	for _, l := range langs {
		for _, p := range []string{"win32/" + l + "/Firefox Setup 1.5.exe", "linux-x86_64/" + l + "/firefox-1.5.tar.bz2"} {
			rel.Files[p] = localmirror.Content(p, 300_000)
		}
	}
	w := newBareWorld(t, rel)
	master := w.Master

	up, err := realmirror.Upstream(master.URL)
	if err != nil {
		t.Fatal(err)
	}
	nginxes := []*realmirror.Server{
		realmirror.StartNginx(t, "nginx-status", realmirror.NginxOptions{Upstream: up,
			Extra: "add_header X-Cache-Status $upstream_cache_status always;"}),
		realmirror.StartNginx(t, "nginx-minuses", realmirror.NginxOptions{Upstream: up, Extra: "proxy_cache_min_uses 2;"}),
		realmirror.StartNginx(t, "nginx-plain", realmirror.NginxOptions{Upstream: up}),
	}
	corruptPath := "linux-x86_64/de/firefox-1.5.tar.bz2"
	fault, err := faultmirror.New(faultmirror.FlippedByte, rel, corruptPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fault.Close() })

	dbURL, cfg := w.DBURL, w.Config
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`database:
  url: %s
master:
  url: %s
releases:
  dir: "/firefox/releases/{release}/"
  products: ["Firefox-{release}", "Firefox-{release}-SSL"]
checks:
  contact: https://example.org/sentry-e2e
  retries: 1
  retry_wait_min: 50ms
  retry_wait_max: 200ms
`, dbURL, master.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runSentry(t, cfg, nil, "db", "migrate"); code != 0 {
		t.Fatalf("db migrate: exit %d\n%s", code, stderr)
	}
	w.Product(t, "Firefox-1.5", langs, location{OS: "win", Path: "/firefox/releases/1.5/win32/:lang/Firefox Setup 1.5.exe"},
		location{OS: "linux", Path: "/firefox/releases/1.5/linux-x86_64/:lang/firefox-1.5.tar.bz2"})
	for _, m := range nginxes {
		w.AddMirror(t, &factory.MirrorOpts{Name: m.Name, BaseURL: m.BaseURL, Rating: factory.Ptr(50),
			Settings: &factory.MirrorSettingsOpts{PrimeMode: "pull"}})
	}
	w.AddMirror(t, &factory.MirrorOpts{Name: fault.Name, BaseURL: fault.URL, Rating: factory.Ptr(50)})

	stdout, stderr, code := runSentry(t, cfg, nil, "prime", "--release", "1.5", "--format", "json")
	if code != 0 {
		t.Fatalf("prime: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var prime struct {
		Outcome string `json:"outcome"`
		Files   int    `json:"files"`
		Mirrors []struct {
			Name     string         `json:"name"`
			State    string         `json:"state"`
			FilesOK  int            `json:"files_ok"`
			Failures map[string]int `json:"failures"`
			Marked   bool           `json:"marked"`
		} `json:"mirrors"`
	}
	if err := json.Unmarshal([]byte(stdout), &prime); err != nil {
		t.Fatalf("prime JSON: %v\n%s", err, stdout)
	}
	if prime.Outcome != "completed" || prime.Files != 6 || len(prime.Mirrors) != 4 {
		t.Fatalf("prime: %s", stdout)
	}
	for _, m := range prime.Mirrors {
		wantOK, wantState := 6, "ok"
		if m.Name == fault.Name {
			wantOK, wantState = 5, "partial"
			if m.Failures["checksum_mismatch"] != 1 {
				t.Errorf("%s: failures %v, want one checksum_mismatch", m.Name, m.Failures)
			}
		}
		if m.State != wantState || m.FilesOK != wantOK || !m.Marked {
			t.Errorf("prime, %s: %+v; want %s with %d files verified, marked", m.Name, m, wantState, wantOK)
		}
	}

	// The bouncer tables: every location good on the nginx mirrors; the
	// linux location off on the corrupt mirror, its win32 location good.
	var good, off, other int
	w.Query(t, `SELECT count(*) FILTER (WHERE lmm.active AND lmm.healthy AND m.name LIKE 'nginx-%'),
		count(*) FILTER (WHERE NOT lmm.active AND NOT lmm.healthy AND m.name = '`+fault.Name+`' AND l.path LIKE '%linux%'),
		count(*) FILTER (WHERE NOT (lmm.active AND lmm.healthy) AND NOT (m.name = '`+fault.Name+`' AND l.path LIKE '%linux%'))
		FROM mirror_location_mirror_map lmm JOIN mirror_mirrors m ON m.id = lmm.mirror_id JOIN mirror_locations l ON l.id = lmm.location_id`,
		&good, &off, &other)
	if good != 6 || off != 1 || other != 0 {
		t.Errorf("marks: %d good nginx locations (want 6), %d corrupt taken off (want 1), %d others not good (want 0)", good, off, other)
	}
	// What nginx told sentry: the X-Cache-Status mirror's word is recorded.
	var statusWords int
	w.Query(t, `SELECT count(*) FROM sentry_checks c JOIN mirror_mirrors m ON m.id = c.mirror_id
		WHERE m.name = 'nginx-status' AND c.cache_status LIKE 'X-Cache-Status: %'`, &statusWords)
	if statusWords == 0 {
		t.Error("no X-Cache-Status recorded from the nginx mirror that sends it")
	}

	// The report, as ops would read it.
	stdout, stderr, code = runSentry(t, cfg, nil, "report", "--format", "json")
	if code != 0 {
		t.Fatalf("report: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var rep struct {
		Mirrors []struct {
			Name           string           `json:"name"`
			State          string           `json:"state"`
			Checks         int64            `json:"checks"`
			Failures       int64            `json:"failures"`
			FailuresByKind map[string]int64 `json:"failures_by_kind"`
			FilesCorrupt   int64            `json:"files_corrupt"`
			LastFailure    *struct {
				Kind string `json:"kind"`
				Path string `json:"path"`
			} `json:"last_failure"`
		} `json:"mirrors"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("report JSON: %v\n%s", err, stdout)
	}
	if len(rep.Mirrors) != 4 {
		t.Fatalf("report has %d mirrors, want 4:\n%s", len(rep.Mirrors), stdout)
	}
	for _, m := range rep.Mirrors {
		if m.Checks < 6 {
			t.Errorf("report, %s: %d checks, want at least the 6 files", m.Name, m.Checks)
		}
		if m.Name == fault.Name {
			if m.Failures != 1 || m.FailuresByKind["checksum_mismatch"] != 1 || m.FilesCorrupt != 1 ||
				m.LastFailure == nil || m.LastFailure.Kind != "checksum_mismatch" || m.LastFailure.Path != corruptPath {
				t.Errorf("report, %s: %+v; want one checksum_mismatch of %s", m.Name, m, corruptPath)
			}
			continue
		}
		if m.Failures != 0 || len(m.FailuresByKind) != 0 || m.LastFailure != nil {
			t.Errorf("report, %s: %+v; want no failure", m.Name, m)
		}
	}

	// nginx really holds the files: asking every nginx mirror for every
	// file again reaches the master not once, the X-Cache-Status mirror
	// says HIT, and every cache directory holds an entry per file.
	before := master.Stats().Requests
	client := &http.Client{Timeout: 30 * time.Second}
	for _, m := range nginxes {
		for _, p := range rel.Paths() {
			resp, err := client.Get(primer.FileURL(m.BaseURL, rel.Dir, p))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, rel.Files[p]) {
				t.Errorf("%s %s: %d, %d bytes (%v)", m.Name, p, resp.StatusCode, len(body), err)
			}
			if m.Name == "nginx-status" && resp.Header.Get("X-Cache-Status") != "HIT" {
				t.Errorf("%s %s: X-Cache-Status %q, want HIT", m.Name, p, resp.Header.Get("X-Cache-Status"))
			}
		}
		if n := m.CacheEntries(t); n != len(rel.Files) {
			t.Errorf("%s holds %d cache entries, want %d", m.Name, n, len(rel.Files))
		}
	}
	if got := master.Stats().Requests - before; got != 0 {
		t.Errorf("the master was asked %d times after the prime: nginx did not keep the files", got)
	}
}
