package sweep_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/realmirror"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestRespin: a file of a primed release changes on the master (same
// size, other bytes). The next sweep sees the new manifest, takes the
// file's location off every mirror, hashes it everywhere and offers it
// again only where the new bytes are: a mirror that synced them, and a
// Varnish cache that served the old ones until sentry purged it. A mirror
// that kept the old bytes and an nginx cache that cannot be purged are
// reported as serving the previous version.
func TestRespin(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	fresh, freshID := w.Static(t, "fresh")
	_, _ = w.Static(t, "old")
	up, err := realmirror.Upstream(w.Master.URL)
	if err != nil {
		t.Fatal(err)
	}
	nginx := realmirror.StartNginx(t, "nginx", realmirror.NginxOptions{Upstream: up})
	nginxID := w.AddMirror(t, nginx.Name, nginx.BaseURL, &factory.MirrorSettingsOpts{PrimeMode: "pull"})
	varnish := realmirror.StartVarnish(t, "varnish", up)
	varnishID := w.AddMirror(t, varnish.Name, varnish.BaseURL,
		&factory.MirrorSettingsOpts{PrimeMode: "pull", PurgeMethod: "PURGE", PurgeURL: "{url}"})
	if rep := w.Prime(t); rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("prime: %s %s", rep.Outcome, rep.Reason)
	}
	if first, _ := w.Offered(t, w.LocWin); len(first) != 4 {
		t.Fatalf("after the prime the win32 location is offered on %v; want all four mirrors", first)
	}

	p := "win32/en-US/Firefox Setup 1.5.exe"
	respun := localmirror.Flip(w.Rel.Files[p])
	w.Publish(p, respun)
	fresh.Put(w.Rel, p, respun)

	rep := w.Sweep(t, false)
	if first, fallback := w.Offered(t, w.LocWin); !slices.Equal(first, world.Sorted(freshID, varnishID)) || len(fallback) != 0 {
		t.Errorf("after the respin the win32 location is offered on %v, fallback %v; want fresh and the purged Varnish only", first, fallback)
	}
	details := w.CheckDetails(t, rep.RunID, p)
	for _, name := range []string{"old", "nginx"} {
		if got := details[name]; len(got) != 1 || !strings.Contains(got[0], "serves the previous version (stale)") {
			t.Errorf("%s's check of the respun file: %q; want it reported as serving the previous version", name, got)
		}
	}
	if got := details["varnish"]; len(got) != 1 || !strings.HasPrefix(got[0], "ok: ") || !strings.Contains(got[0], "purged") {
		t.Errorf("Varnish's check of the respun file: %q; want ok after a purge", got)
	}
	// The Varnish cache serves the new bytes now, to anyone.
	resp, err := http.Get(primer.FileURL(varnish.BaseURL, w.Rel.Dir, p))
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
	if got := w.Marks(t)[w.LocWin][nginxID]; got != world.Off {
		t.Errorf("nginx (stale, not purgeable): %+v, want off", got)
	}

	// Another respin, then a re-prime: exactly the changed file is
	// fetched again on the mirror that holds everything right, no --force.
	q := "linux-x86_64/de/firefox-1.5.tar.bz2"
	w.Publish(q, localmirror.Flip(w.Rel.Files[q]))
	fresh.Put(w.Rel, q, w.Rel.Files[q])
	prep := w.Prime(t)
	var fetched []string
	for _, c := range w.Seen.All() {
		if c.RunID == prep.RunID && c.MirrorID == freshID && c.Path != "" {
			fetched = append(fetched, c.Path)
		}
	}
	if !slices.Equal(fetched, []string{q}) {
		t.Errorf("the re-prime fetched %q on fresh; want only the respun %q", fetched, q)
	}
	if s := world.MirrorSums(t, prep, "fresh"); s.Resumed != 3 || s.FilesOK != 4 {
		t.Errorf("fresh in the re-prime: %+v; want 3 files resumed, 4 verified", s)
	}
}
