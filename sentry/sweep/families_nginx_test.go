package sweep_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/realmirror"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/metrics"
	"github.com/mirrorsentry/sentry/sentry/report"
)

// writeTree writes the files of w's release under root, as a mirror's
// tree (root/firefox/releases/1.5/...), but those of skip.
func writeTree(t *testing.T, w *world.World, root string, skip ...string) {
	t.Helper()
	for p, body := range w.Rel.Files {
		if slices.Contains(skip, p) {
			continue
		}
		path := filepath.Join(root, w.Rel.Dir, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFileMissingOverIPv6Only runs real nginx as dual-stack mirrors on
// loopback, one name resolving to 127.0.0.1 and ::1: "split" is two
// servers, the one on ::1 lacking a file (a second machine behind the
// AAAA record); "nov6" has nothing on ::1 (its IPv6 side unreachable);
// "both" serves the same tree over both. A sweep checks split's files
// over each family: the file is "missing over IPv6 only" — in the report
// (table, JSON, the mirror's failing files), the status page, the
// operators' digest mail, the metrics and the check recorded with its
// family — and its location is off, since a 404 over
// IPv6 is what IPv6 users get. nov6 keeps today's policy: degraded,
// broken over IPv6, its locations offered. Once the IPv6 server has the
// file, the next sweep hashes it there and the location comes back.
func TestFileMissingOverIPv6Only(t *testing.T) {
	t.Parallel()
	realmirror.NeedIPv6Loopback(t)
	w := world.New(t, nil)
	w.Resolve(t, realmirror.DualResolver)
	const missing = "win32/en-US/Firefox Setup 1.5.exe"
	full, partial := t.TempDir(), t.TempDir()
	writeTree(t, w, full)
	writeTree(t, w, partial, missing)
	split := realmirror.StartDualStackNginx(t, "split", full, partial)
	nov6 := realmirror.StartDualStackNginx(t, "nov6", full, "")
	both := realmirror.StartDualStackNginx(t, "both", full, full)
	base := func(name string, port int) string {
		return "http://" + net.JoinHostPort(name+".dual.test", strconv.Itoa(port)) + "/pub"
	}
	splitID := w.AddMirror(t, "split", base("split", split.Port), nil)
	nov6ID := w.AddMirror(t, "nov6", base("nov6", nov6.Port), nil)
	bothID := w.AddMirror(t, "both", base("both", both.Port), nil)

	// The prime checks each file over each family too (the prime's own
	// test: sentry/prime, TestPrimeFileMissingOverIPv6Only); then the
	// sweep.
	if rep := w.Prime(t); rep.Outcome != "completed" {
		t.Fatalf("prime: %s %s", rep.Outcome, rep.Reason)
	}
	w.Sweep(t, false)
	ctx := context.Background()
	rep := report.New(w.Pool(), nil)
	rows := func() map[string]report.MirrorRow {
		t.Helper()
		ms, err := rep.Mirrors(ctx, report.Window{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]report.MirrorRow{}
		for _, m := range ms.Mirrors {
			out[m.Name] = m
		}
		return out
	}
	r := rows()
	s := r["split"]
	if s.State != "up" || s.Condition() != "degraded" || !slices.Equal(s.BrokenFamilies, []string{"ipv6"}) ||
		len(s.FamilyFailures) != 1 || s.FamilyFailures[0] != (report.FamilyFailure{Family: "ipv6", Missing: 1, First: missing}) ||
		!strings.Contains(s.Why(), "1 file missing over IPv6 only ("+missing+")") {
		t.Errorf("split: %s %s, broken over %v, %+v, why %q; want degraded, 1 file missing over IPv6 only",
			s.State, s.Condition(), s.BrokenFamilies, s.FamilyFailures, s.Why())
	}
	marks := w.Marks(t)
	if marks[w.LocWin][splitID] != world.Off || marks[w.LocLin][splitID] != world.Good {
		t.Errorf("split's marks: win %+v, linux %+v; want the win32 location off (missing over IPv6), linux offered",
			marks[w.LocWin][splitID], marks[w.LocLin][splitID])
	}
	// The table says it, and so does the mirror's report.
	var table bytes.Buffer
	if err := report.WriteMirrorsTable(&table, &report.Mirrors{Mirrors: []report.MirrorRow{s}}, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "missing over IPv6 only") {
		t.Errorf("the report's table does not say it:\n%s", table.String())
	}
	d, err := rep.Mirror(ctx, "split", report.Window{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.FailingFiles) != 1 || d.FailingFiles[0].Path != missing || d.FailingFiles[0].Kind != "not_found" ||
		d.FailingFiles[0].FailedOver != "ipv6" || !strings.Contains(d.FailingFiles[0].Detail, "over IPv6 only (served right over IPv4)") {
		t.Errorf("split's failing files: %+v", d.FailingFiles)
	}
	// The sweep's check over IPv6 is recorded with its family; over IPv4
	// the file was right.
	var v6, v4 int
	w.QueryRow(t, `SELECT count(*) FILTER (WHERE family = 'ipv6' AND result = 'not_found'),
		count(*) FILTER (WHERE family = 'ipv4' AND result NOT IN ('ok', 'unchanged'))
		FROM sentry_checks WHERE mirror_id = $1 AND path = $2 AND run_id IN (SELECT id FROM sentry_runs WHERE kind = 'sweep')`,
		[]any{splitID, missing}, &v6, &v4)
	if v6 != 1 || v4 != 0 {
		t.Errorf("%d not_found over IPv6 and %d failures over IPv4 recorded by the sweep, want 1 and 0", v6, v4)
	}
	// Metrics.
	fams, err := metrics.New(w.Pool(), nil).Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range fams {
		if n := f.GetName(); n == "sentry_mirror_family_files_failing" || n == "sentry_mirror_family_broken" {
			for _, m := range f.GetMetric() {
				lab := map[string]string{}
				for _, l := range m.GetLabel() {
					lab[l.GetName()] = l.GetValue()
				}
				got[n+"{"+lab["mirror"]+","+lab["family"]+"}"] = fmt.Sprint(m.GetGauge().GetValue())
			}
		}
	}
	want := map[string]string{"sentry_mirror_family_files_failing{split,ipv6}": "1", "sentry_mirror_family_broken{split,ipv6}": "1",
		"sentry_mirror_family_broken{nov6,ipv6}": "1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("metrics %v, want %v", got, want)
	}

	// The status page and the operators' mail say it too.
	t.Run("page", func(t *testing.T) {
		world.PageSays(t, rep, "/mirrors/split", "1 file missing over IPv6 only", "over IPv6 only (served right over IPv4)")
	})
	t.Run("mail", func(t *testing.T) {
		world.DigestSays(t, w.Store, rep, "split: degraded: 1 file missing over IPv6 only")
	})

	// An IPv6 side that does not answer at all keeps today's policy
	// (degraded): reported, every location offered.
	n := r["nov6"]
	if n.State != "up" || n.Condition() != "degraded" || !slices.Equal(n.BrokenFamilies, []string{"ipv6"}) || len(n.FamilyFailures) != 0 ||
		!strings.Contains(n.Why(), "broken over IPv6 (reached over the other family; offered still)") {
		t.Errorf("nov6: %s %s %v %+v, why %q", n.State, n.Condition(), n.BrokenFamilies, n.FamilyFailures, n.Why())
	}
	if marks[w.LocWin][nov6ID] != world.Good || marks[w.LocLin][nov6ID] != world.Good {
		t.Errorf("nov6's marks %+v %+v, want both offered", marks[w.LocWin][nov6ID], marks[w.LocLin][nov6ID])
	}
	if b := r["both"]; b.Condition() != "up" || marks[w.LocWin][bothID] != world.Good {
		t.Errorf("both: %s %+v", b.Condition(), b.FamilyFailures)
	}

	// A second sweep finds the same: the file stays off, and over IPv4
	// nothing is hashed again (its copy there was verified).
	hashed := func() int {
		n := 0
		for _, c := range w.Seen.All() {
			if c.MirrorID == splitID && c.Hashed {
				n++
			}
		}
		return n
	}
	before := hashed()
	w.Sweep(t, false)
	if w.Marks(t)[w.LocWin][splitID] != world.Off {
		t.Error("the second sweep put split's win32 location back")
	}
	if n := hashed() - before; n != 0 {
		t.Errorf("the second sweep hashed %d files of split; want none (nothing changed)", n)
	}

	// The IPv6 server gets the file: hashed there, offered again.
	writeTree(t, w, partial)
	w.Sweep(t, false)
	if got := w.Marks(t)[w.LocWin][splitID]; got != world.Good {
		t.Errorf("split's win32 location after the IPv6 server got the file: %+v, want offered", got)
	}
	if s := rows()["split"]; s.Condition() != "up" || len(s.FamilyFailures) != 0 || len(s.BrokenFamilies) != 0 {
		t.Errorf("split after the fix: %s %+v %v", s.Condition(), s.FamilyFailures, s.BrokenFamilies)
	}
}
