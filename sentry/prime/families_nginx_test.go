package prime_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/realmirror"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/report"
)

// releaseTree writes the files of w's release under root, as a mirror's
// tree served under /pub/ (root/firefox/releases/1.5/...); a file of
// w's release that is not in files is removed, and files' bodies are
// written in place of the release's (nil: the release's).
func releaseTree(t *testing.T, w *world.World, root string, files map[string][]byte) {
	t.Helper()
	for p, body := range w.Rel.Files {
		path := filepath.Join(root, w.Rel.Dir, filepath.FromSlash(p))
		b, ok := files[p]
		if !ok {
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			continue
		}
		if b == nil {
			b = body
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// every is every file of w's release, as the release has it.
func every(w *world.World) map[string][]byte {
	out := map[string][]byte{}
	for p := range w.Rel.Files {
		out[p] = nil
	}
	return out
}

// requests counts the requests in an nginx's access log.
func requests(t *testing.T, s *realmirror.Server) int { return len(s.AccessLog(t)) }

// TestPrimeFileMissingOverIPv6Only runs real nginx as dual-stack mirrors
// on loopback, one name resolving to 127.0.0.1 and ::1: "split" is two
// servers, each with a tree of its own (a second machine behind the AAAA
// record); "nov6" has nothing on ::1 (its IPv6 side refuses
// connections); "both" serves one tree over both; "single" has an A
// record only. A prime verifies each file's bytes over IPv4 and its
// presence and size over IPv6: a single-stack mirror costs no request
// more than before, a dual-stack one a reachability HEAD per family and
// a HEAD per file over IPv6.
//
// When the master respins a file that split's IPv4 server has and its
// IPv6 server lacks, the prime takes the file's location off split (an
// IPv6 user's 404 is not retried over IPv4) and says "over IPv6 only":
// its summary, the check recorded with its family, the file's state, and
// so the report, the mirror's page and the operators' digest. nov6, whose
// IPv6 side does not answer at all, keeps state.family_policy: offered
// under degraded (clients fall back to IPv4 on a refused connection),
// down under down.
func TestPrimeFileMissingOverIPv6Only(t *testing.T) {
	t.Parallel()
	realmirror.NeedIPv6Loopback(t)
	w := world.New(t, nil)
	w.Resolve(t, realmirror.DualResolver)
	const respun = "win32/en-US/Firefox Setup 1.5.exe"
	v4, v6 := t.TempDir(), t.TempDir()
	releaseTree(t, w, v4, every(w))
	releaseTree(t, w, v6, every(w))
	split := realmirror.StartDualStackNginx(t, "split", v4, v6)
	nov6 := realmirror.StartDualStackNginx(t, "nov6", v4, "")
	both := realmirror.StartDualStackNginx(t, "both", v4, v4)
	single := realmirror.StartDualStackNginx(t, "single", v4, "")
	base := func(host string, port int) string {
		return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/pub"
	}
	splitID := w.AddMirror(t, "split", base("split.dual.test", split.Port), nil)
	nov6ID := w.AddMirror(t, "nov6", base("nov6.dual.test", nov6.Port), nil)
	bothID := w.AddMirror(t, "both", base("both.dual.test", both.Port), nil)
	singleID := w.AddMirror(t, "single", base("single.v4.test", single.Port), nil)

	// The first prime: every file right wherever it is served. Requests
	// counted on each server.
	before := map[*realmirror.Server]int{}
	for _, s := range []*realmirror.Server{split.V4, split.V6, nov6.V4, both.V4, both.V6, single.V4} {
		before[s] = requests(t, s)
	}
	rep := w.Prime(t)
	if rep.Outcome != "completed" {
		t.Fatalf("prime: %s %s", rep.Outcome, rep.Reason)
	}
	files := len(w.Rel.Files)
	for _, c := range []struct {
		name string
		s    *realmirror.Server
		want int
	}{
		// A GET (verified) and its follow-up HEAD (the cache's word) per
		// file: not one request more on a single-stack mirror.
		{"single", single.V4, 2 * files},
		// Beside them, a reachability HEAD per family, and a HEAD per
		// file over IPv6.
		{"both over IPv4", both.V4, 1 + 2*files},
		{"both over IPv6", both.V6, 1 + files},
		{"split over IPv6", split.V6, 1 + files},
		// IPv6 refused: the files over IPv4 alone.
		{"nov6 over IPv4", nov6.V4, 1 + 2*files},
	} {
		if n := requests(t, c.s) - before[c.s]; n != c.want {
			t.Errorf("%s: %d requests, want %d\n%v", c.name, n, c.want, c.s.AccessLog(t))
		}
	}
	marks := w.Marks(t)
	for _, id := range []int{splitID, nov6ID, bothID, singleID} {
		if marks[w.LocWin][id] != world.Good || marks[w.LocLin][id] != world.Good {
			t.Errorf("mirror %d after the first prime: %+v %+v, want both locations offered", id, marks[w.LocWin][id], marks[w.LocLin][id])
		}
	}
	if s := world.MirrorSums(t, rep, "nov6"); s.State != "ok" || !slices.Equal(s.BrokenFamilies, []string{"ipv6"}) ||
		!strings.Contains(s.Note, "broken over IPv6: connect") || !strings.Contains(s.Note, "offered still (state.family_policy degraded)") {
		t.Errorf("nov6: %s, broken over %v, note %q; want ok (offered), broken over IPv6", s.State, s.BrokenFamilies, s.Note)
	}
	for _, name := range []string{"split", "both", "single"} {
		if s := world.MirrorSums(t, rep, name); s.State != "ok" || len(s.BrokenFamilies) != 0 || len(s.FailedOver) != 0 {
			t.Errorf("%s: %+v", name, s)
		}
	}
	// The sweeps know the mirrors: up.
	w.Sweep(t, false)

	// The master respins a file; split's IPv4 server has the new one,
	// its IPv6 server none.
	body := localmirror.Content("respun "+respun, 71_000)
	w.Publish(respun, body)
	releaseTree(t, w, v4, every(w))
	rest := every(w)
	delete(rest, respun)
	releaseTree(t, w, v6, rest)
	rep = w.Prime(t)
	if rep.Outcome != "completed" {
		t.Fatalf("prime after the respin: %s %s", rep.Outcome, rep.Reason)
	}
	s := world.MirrorSums(t, rep, "split")
	if s.State != "partial" || s.FilesFailed != 1 || s.Failures["not_found"] != 1 || s.FailedOver["ipv6"] != 1 ||
		!strings.Contains(s.FirstFailure, "not_found "+respun+": over IPv6 only (served right over IPv4)") {
		t.Errorf("split's summary: %s, %d failed %v (over one family alone: %v), first %q; want the respun file not_found over IPv6 only",
			s.State, s.FilesFailed, s.Failures, s.FailedOver, s.FirstFailure)
	}
	var reason string
	w.QueryRow(t, `SELECT reason FROM sentry_log WHERE mirror_id = $1 ORDER BY check_time DESC LIMIT 1`, []any{splitID}, &reason)
	if !strings.Contains(reason, "1 file failing over IPv6 only") {
		t.Errorf("split's sentry_log line: %q", reason)
	}
	marks = w.Marks(t)
	if marks[w.LocWin][splitID] != world.Off || marks[w.LocLin][splitID] != world.Good {
		t.Errorf("split's marks: win %+v, linux %+v; want the win32 location off (missing over IPv6), linux offered",
			marks[w.LocWin][splitID], marks[w.LocLin][splitID])
	}
	for _, id := range []int{nov6ID, bothID, singleID} {
		if marks[w.LocWin][id] != world.Good {
			t.Errorf("mirror %d's win32 location after the respin: %+v, want offered", id, marks[w.LocWin][id])
		}
	}
	// The check over IPv6 is recorded with its family; over IPv4 the
	// respun file was right.
	var v6Missing, v4Failed int
	w.QueryRow(t, `SELECT count(*) FILTER (WHERE family = 'ipv6' AND result = 'not_found'),
		count(*) FILTER (WHERE family = 'ipv4' AND result NOT IN ('ok', 'unchanged'))
		FROM sentry_checks WHERE mirror_id = $1 AND path = $2`, []any{splitID, respun}, &v6Missing, &v4Failed)
	if v6Missing != 1 || v4Failed != 0 {
		t.Errorf("%d not_found over IPv6 and %d failures over IPv4 recorded, want 1 and 0", v6Missing, v4Failed)
	}

	// The views read it from the file's state.
	ctx := context.Background()
	rp := report.New(w.Pool(), nil)
	win := report.Window{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Minute)}
	ms, err := rp.Mirrors(ctx, win)
	if err != nil {
		t.Fatal(err)
	}
	var row report.MirrorRow
	for _, m := range ms.Mirrors {
		if m.Name == "split" {
			row = m
		}
	}
	if row.Condition() != "degraded" || !slices.Equal(row.BrokenFamilies, []string{"ipv6"}) ||
		len(row.FamilyFailures) != 1 || row.FamilyFailures[0] != (report.FamilyFailure{Family: "ipv6", Missing: 1, First: respun}) ||
		!strings.Contains(row.Why(), "1 file missing over IPv6 only ("+respun+")") {
		t.Errorf("split in the report: %s, broken over %v, %+v, why %q; want degraded, 1 file missing over IPv6 only",
			row.Condition(), row.BrokenFamilies, row.FamilyFailures, row.Why())
	}
	var table bytes.Buffer
	if err := report.WriteMirrorsTable(&table, &report.Mirrors{Mirrors: []report.MirrorRow{row}}, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "missing over IPv6 only") {
		t.Errorf("the report's table does not say it:\n%s", table.String())
	}
	d, err := rp.Mirror(ctx, "split", win)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.FailingFiles) != 1 || d.FailingFiles[0].Path != respun || d.FailingFiles[0].FailedOver != "ipv6" ||
		!strings.Contains(d.FailingFiles[0].Detail, "over IPv6 only (served right over IPv4)") {
		t.Errorf("split's failing files: %+v", d.FailingFiles)
	}
	t.Run("page", func(t *testing.T) {
		world.PageSays(t, rp, "/mirrors/split", "1 file missing over IPv6 only")
	})
	t.Run("mail", func(t *testing.T) {
		world.DigestSays(t, w.Store, rp, "split: degraded: 1 file missing over IPv6 only")
	})

	// state.family_policy down: a mirror broken over IPv6 counts as an
	// unreachable one, which a prime takes down (the guard permitting).
	w.Deps.Config.State.FamilyPolicy = config.PolicyDown
	rep, err = sentry.Prime(ctx, w.Deps, sentry.PrimeOptions{Release: w.Rel.Name, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := world.MirrorSums(t, rep, "nov6"); n.State != "down" || !strings.Contains(n.Note, "counted as unreachable (state.family_policy down)") {
		t.Errorf("nov6 under family_policy down: %s, note %q; want down, broken over IPv6", n.State, n.Note)
	}
	states, err := rp.States(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range states {
		want := "up"
		if m.Name == "nov6" {
			want = "down"
		}
		if m.State != want {
			t.Errorf("under family_policy down, %s is %s, want %s", m.Name, m.State, want)
		}
	}
	marks = w.Marks(t)
	for _, loc := range []int{w.LocWin, w.LocLin} {
		if marks[loc][nov6ID].Healthy {
			t.Errorf("nov6 under family_policy down: location %d %+v, want unhealthy", loc, marks[loc][nov6ID])
		}
		if marks[loc][bothID] != world.Good || marks[loc][singleID] != world.Good {
			t.Errorf("under family_policy down, location %d: both %+v, single %+v; want offered", loc, marks[loc][bothID], marks[loc][singleID])
		}
	}
	if marks[w.LocWin][splitID] != world.Off {
		t.Errorf("split's win32 location after a forced prime: %+v, want off still", marks[w.LocWin][splitID])
	}
}

// TestPrimeKeepsAFileWrongOverIPv6Only: a file of the right size but
// other bytes on a dual-stack mirror's IPv6 server passes a prime, which
// reads only its size there (design.md says so), until a deep sweep,
// which hashes each file over each family, finds it wrong over IPv6 only
// and takes its location off. A prime after it does not put it back: a
// file whose bytes were found wrong is verified in full over each family.
func TestPrimeKeepsAFileWrongOverIPv6Only(t *testing.T) {
	t.Parallel()
	realmirror.NeedIPv6Loopback(t)
	// Every deep sweep hashes every file.
	w := world.New(t, &world.Options{Config: func(c *config.Config) { c.Sweep.DeepPeriod = config.Duration(24 * time.Hour) }})
	w.Resolve(t, realmirror.DualResolver)
	const flipped = "win32/de/Firefox Setup 1.5.exe"
	v4, v6 := t.TempDir(), t.TempDir()
	releaseTree(t, w, v4, every(w))
	wrong := every(w)
	wrong[flipped] = localmirror.Flip(w.Rel.Files[flipped])
	releaseTree(t, w, v6, wrong)
	split := realmirror.StartDualStackNginx(t, "split", v4, v6)
	id := w.AddMirror(t, "split", "http://"+net.JoinHostPort("split.dual.test", strconv.Itoa(split.Port))+"/pub", nil)

	if rep := w.Prime(t); rep.Outcome != "completed" {
		t.Fatalf("prime: %s %s", rep.Outcome, rep.Reason)
	}
	if m := w.Marks(t)[w.LocWin][id]; m != world.Good {
		t.Errorf("after the first prime: %+v; want offered (its size is right over IPv6)", m)
	}
	w.Sweep(t, true)
	var result, over string
	w.QueryRow(t, `SELECT result, failed_over FROM sentry_file_state WHERE mirror_id = $1 AND path = $2`, []any{id, flipped}, &result, &over)
	if result != "checksum_mismatch" || over != "ipv6" || w.Marks(t)[w.LocWin][id] != world.Off {
		t.Fatalf("after the deep sweep: %s over %q, %+v; want checksum_mismatch over IPv6 only, the location off", result, over, w.Marks(t)[w.LocWin][id])
	}

	rep := w.Prime(t) // a re-run: resumes every file but the wrong one
	if s := world.MirrorSums(t, rep, "split"); s.FilesFailed != 1 || s.FailedOver["ipv6"] != 1 ||
		!strings.Contains(s.FirstFailure, "checksum_mismatch "+flipped+": over IPv6 only") {
		t.Errorf("the prime after the deep sweep: %+v", s)
	}
	if m := w.Marks(t)[w.LocWin][id]; m != world.Off {
		t.Errorf("the prime after the deep sweep put the location back: %+v", m)
	}
	var gets int
	w.QueryRow(t, `SELECT count(*) FROM sentry_checks WHERE mirror_id = $1 AND path = $2 AND family = 'ipv6' AND method = 'GET'
		AND result = 'checksum_mismatch'`, []any{id, flipped}, &gets)
	if gets != 2 {
		t.Errorf("%d GETs over IPv6 found the file wrong, want 2 (the deep sweep's and the prime's)", gets)
	}
}

// TestPrimeSampledOverEachFamily: a sampled prime of a passive dual-stack
// mirror samples each file's blocks over IPv4 and checks its presence and
// size over IPv6 with a HEAD — no body read there: a file missing over
// IPv6 alone takes its location off all the same.
func TestPrimeSampledOverEachFamily(t *testing.T) {
	t.Parallel()
	realmirror.NeedIPv6Loopback(t)
	w := world.New(t, &world.Options{Sampled: true})
	w.Resolve(t, realmirror.DualResolver)
	const missing = "linux-x86_64/de/firefox-1.5.tar.bz2"
	v4, v6 := t.TempDir(), t.TempDir()
	releaseTree(t, w, v4, every(w))
	rest := every(w)
	delete(rest, missing)
	releaseTree(t, w, v6, rest)
	split := realmirror.StartDualStackNginx(t, "split", v4, v6)
	id := w.AddMirror(t, "split", "http://"+net.JoinHostPort("split.dual.test", strconv.Itoa(split.Port))+"/pub",
		&factory.MirrorSettingsOpts{PrimeMode: "passive"})
	before4, before6 := requests(t, split.V4), requests(t, split.V6)
	rep := w.Prime(t)
	s := world.MirrorSums(t, rep, "split")
	if s.FilesSampled != len(w.Rel.Files)-1 || s.FailedOver["ipv6"] != 1 || !strings.Contains(s.FirstFailure, "not_found "+missing+": over IPv6 only") {
		t.Errorf("split: %+v; want every file but one sampled, that one missing over IPv6 only", s)
	}
	if m := w.Marks(t); m[w.LocLin][id] != world.Off || m[w.LocWin][id] != world.Good {
		t.Errorf("split's marks: linux %+v, win %+v; want linux off", m[w.LocLin][id], m[w.LocWin][id])
	}
	// An access log line: method, path (its spaces split it too),
	// Range, status, bytes, cache status.
	uri := func(l []string) string { return strings.Join(l[1:len(l)-4], " ") }
	ranges := 0
	for _, l := range split.V4.AccessLog(t)[before4:] {
		if l[0] == "GET" && l[len(l)-4] != `""` {
			ranges++
		}
	}
	if ranges != len(w.Rel.Files) {
		t.Errorf("%d sampled GETs over IPv4, want one per file (%d)", ranges, len(w.Rel.Files))
	}
	// Over IPv6: HEADs only — the reachability check, one per file there,
	// and the missing file's polls (passive: its IPv6 server may sync
	// later) until the deadline.
	heads := map[string]int{}
	for _, l := range split.V6.AccessLog(t)[before6:] {
		if l[0] != "HEAD" {
			t.Errorf("over IPv6, a request other than a HEAD: %v", l)
		}
		heads[uri(l)]++
	}
	for p := range w.Rel.Files {
		n := heads["/pub"+w.Rel.Dir+p]
		if p == missing && n < 2 || p != missing && n != 1 {
			t.Errorf("%d HEADs of %s over IPv6", n, p)
		}
	}
	if heads["/pub"] != 1 {
		t.Errorf("%d reachability checks over IPv6, want 1", heads["/pub"])
	}
}
