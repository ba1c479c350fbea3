package sweep_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// TestRsyncListing: a light sweep of a mirror with an rsync_url lists the
// release tree over rsync in one connection and sends HTTP requests only
// for what the listing shows changed or missing, plus a rotating sample;
// a missing file and a changed size are found; a daemon that refuses
// means HTTP checks, not a failure; a pull-through cache is checked over
// HTTP whatever its rsync_url.
func TestRsyncListing(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	ctx := context.Background()
	m, id := w.Static(t, "synced")
	tree := t.TempDir()
	if err := m.Tree(tree); err != nil {
		t.Fatal(err)
	}
	rsyncd, err := localmirror.StartRsyncd("mozilla", tree)
	if errors.Is(err, localmirror.ErrNoRsync) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer rsyncd.Close()
	// The mirror's rsync URL is the counterpart of its base URL ("/pub").
	factory.MirrorSettings(ctx, t, w.Pool(), &factory.MirrorSettingsOpts{MirrorID: id, PrimeMode: "passive", RsyncURL: rsyncd.URL})
	cache, cacheID := w.Static(t, "cache")
	factory.MirrorSettings(ctx, t, w.Pool(), &factory.MirrorSettingsOpts{MirrorID: cacheID, PrimeMode: "pull", RsyncURL: rsyncd.URL})
	w.Prime(t)
	files := len(w.Rel.Files)

	// sweep runs a light sweep and returns the HTTP requests each mirror
	// saw and the rsync connections made.
	type seen struct{ synced, cache, rsync int64 }
	sweep := func(what string) (seen, map[string]int) {
		t.Helper()
		before := seen{m.Stats().Requests, cache.Stats().Requests, int64(rsyncd.Connections())}
		rep := w.Sweep(t, false)
		after := seen{m.Stats().Requests, cache.Stats().Requests, int64(rsyncd.Connections())}
		s := world.SweepSums(t, rep, "synced")
		if rep.Outcome != "completed" || s.Checked != files {
			t.Fatalf("%s: %s, synced %+v", what, rep.Outcome, s)
		}
		kinds := map[string]int{}
		for k, n := range s.Failures {
			kinds[string(k)] = n
		}
		return seen{after.synced - before.synced, after.cache - before.cache, after.rsync - before.rsync}, kinds
	}
	// The first listing is new: every file is checked over HTTP once, and
	// what rsync said is kept.
	if got, _ := sweep("first listing"); got.rsync != 1 || got.synced != int64(1+files) {
		t.Errorf("first listing: %+v, want 1 rsync connection and %d HTTP requests", got, 1+files)
	}
	// Unchanged: one connection; over HTTP the reachability HEAD and the
	// sample (one file) only. The cache is checked over HTTP in full.
	got, _ := sweep("unchanged tree")
	if got.rsync != 1 || got.synced != 2 {
		t.Errorf("unchanged tree: %d rsync connections and %d HTTP requests, want 1 and 2 (reachability, one sampled file)", got.rsync, got.synced)
	}
	if got.cache != int64(1+files) {
		t.Errorf("the pull-through cache saw %d HTTP requests, want %d: its listing is the master's", got.cache, 1+files)
	}
	// A file goes: the listing shows it missing, and HTTP says not_found.
	gone := "win32/de/Firefox Setup 1.5.exe"
	m.Remove(w.Rel, gone)
	if got, kinds := sweep("a file removed"); got.rsync != 1 || kinds["not_found"] != 1 || got.synced > 3 {
		t.Errorf("a file removed: %+v, failures %v; want it found not_found with at most 3 HTTP requests", got, kinds)
	}
	if marks := w.Marks(t); marks[w.LocWin][id] != world.Off {
		t.Errorf("the location of the removed file: %+v, want taken off", marks[w.LocWin][id])
	}
	// A file changes size: found too.
	m.Put(w.Rel, gone, w.Rel.Files[gone])
	changed := "linux-x86_64/en-US/firefox-1.5.tar.bz2"
	m.Put(w.Rel, changed, []byte("shorter"))
	if _, kinds := sweep("a size changed"); kinds["size_mismatch"] != 1 {
		t.Errorf("a size changed: failures %v, want one size_mismatch", kinds)
	}
	// The daemon goes: every file over HTTP, and nothing held against the
	// mirror.
	m.Put(w.Rel, changed, w.Rel.Files[changed])
	rsyncd.Close()
	before := m.Stats().Requests
	rep := w.Sweep(t, false)
	s := world.SweepSums(t, rep, "synced")
	// The file that had the wrong size is right again: a HEAD finds it
	// present, and it is hashed at once (one more request).
	if n := m.Stats().Requests - before; n != int64(1+files+1) || s.Hashed != 1 || s.SweepFailed || s.State != "up" || len(s.Failures) != 0 {
		t.Errorf("rsync refused: %d HTTP requests (want %d), %+v; want every file over HTTP, the fixed one hashed, and the mirror up",
			n, 1+files+1, s)
	}
}
