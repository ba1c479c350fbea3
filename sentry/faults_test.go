package sentry_test

import (
	"bufio"
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/demo/faultmirror"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// faultFile is the file the file faults hit: one language of the win32
// location.
const faultFile = "win32/de/Firefox Setup 1.5.exe"

// Location marks as docs/FAULTS.md words them.
var markWords = map[world.Mark]string{world.Good: "good", world.Off: "off", world.Unhealthy: "unhealthy"}

// faultCase is one row of the fault table, and of docs/FAULTS.md's.
type faultCase struct {
	fault faultmirror.Fault
	// The kinds recorded for the faulty file (or, for the faults of the
	// whole mirror, its files and its reachability check) by a prime, a
	// light sweep (HEAD, then a hash of a file that was failing and is
	// present) and a deep sweep (GET through the hash).
	prime, light, deep checks.Kind
	// win is the faulty mirror's mark of the win32 location after the
	// prime (it held the release before: active=true); the linux location
	// is good, or as win for the faults of the whole mirror.
	win world.Mark
	// state is the mirror's prime state.
	state string
}

// faultTable is every fault the fault mirror can produce, with what sentry
// makes of it. docs/FAULTS.md must say the same (TestFaultsDocMatchesTable).
var faultTable = []faultCase{
	{faultmirror.NotFound, "not_found", "not_found", "not_found", world.Off, "partial"},
	{faultmirror.Forbidden, "forbidden", "forbidden", "forbidden", world.Off, "partial"},
	{faultmirror.ServerError, "http_status", "http_status", "http_status", world.Unhealthy, "down"},
	{faultmirror.Stall, "timeout", "timeout", "timeout", world.Unhealthy, "partial"},
	{faultmirror.Endless, "too_large", "ok", "too_large", world.Off, "partial"},
	{faultmirror.Truncated, "truncated", "truncated", "truncated", world.Unhealthy, "partial"},
	{faultmirror.WrongLength, "size_mismatch", "size_mismatch", "size_mismatch", world.Off, "partial"},
	{faultmirror.FlippedByte, "checksum_mismatch", "ok", "checksum_mismatch", world.Off, "partial"},
	{faultmirror.RedirectLoop, "redirect", "redirect", "redirect", world.Unhealthy, "partial"},
	{faultmirror.RedirectOtherHost, "ok", "ok", "ok", world.Good, "ok"},
	{faultmirror.Downgrade, "redirect", "redirect", "redirect", world.Unhealthy, "down"},
	{faultmirror.BadCertificate, "tls", "tls", "tls", world.Unhealthy, "down"},
	{faultmirror.Refused, "connect", "connect", "connect", world.Unhealthy, "down"},
	{faultmirror.Unresolvable, "dns", "dns", "dns", world.Unhealthy, "down"},
	{faultmirror.Drip, "timeout", "timeout", "timeout", world.Unhealthy, "partial"},
	{faultmirror.Gzip, "size_mismatch", "size_mismatch", "size_mismatch", world.Off, "partial"},
	{faultmirror.HugeHeaders, "too_large", "too_large", "too_large", world.Off, "partial"},
	{faultmirror.RedirectInternal, "redirect", "redirect", "redirect", world.Unhealthy, "partial"},
}

// faultClient is the checks client of the fault tests: it trusts the fault
// mirror's test CA (so that the https→http downgrade is what it sees, not
// the certificate), and a body must bring the default minimum rate (32
// KiB/s) over every 1.5s window (the drip sends 1,100 bytes every 1.5s, so
// only a minimum rate stops it).
func faultClient(t *testing.T, d *sentry.Deps) *checks.Client {
	t.Helper()
	pool, err := faultmirror.RootCAs()
	if err != nil {
		t.Fatal(err)
	}
	c, err := checks.NewClient(checks.ClientOptions{
		UserAgent: d.Config.UserAgent(), ConnectTimeout: 5 * time.Second, HeaderTimeout: 5 * time.Second,
		BodyIdleTimeout: 1500 * time.Millisecond, Retries: 1, RetryWaitMin: 5 * time.Millisecond,
		RetryWaitMax: 20 * time.Millisecond, RootCAs: pool, Logger: d.Logger,
		// The mirror of the redirect into sentry's network stands for one
		// on the Internet; the others, on 127.0.0.1, are mirrors on
		// loopback, which may redirect to loopback.
		PublicPrefixes: []netip.Prefix{netip.PrefixFrom(faultmirror.PublicAddr, 32)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// kindsOf returns the kinds of the checks a run made for a mirror: of the
// faulty file, or of every check for the faults of the whole mirror.
func kindsOf(t *testing.T, w *world.World, run int64, mirror int, path string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, c := range w.Seen.All() {
		if c.RunID == run && c.MirrorID == mirror && (path == "" || c.Path == path) {
			out[string(c.Result)]++
		}
	}
	return out
}

// onlyKind reports whether kinds holds want and, besides it, at most
// successes (a whole-mirror fault: every check failed with want).
func onlyKind(kinds map[string]int, want checks.Kind, whole bool) bool {
	if kinds[string(want)] == 0 {
		return false
	}
	for k := range kinds {
		if k == string(want) {
			continue
		}
		if whole || (k != "ok" && k != "unchanged") {
			return false
		}
	}
	return true
}

// TestFaults runs every fault of the fault mirror against prime, a light
// sweep and a deep sweep, beside two good mirrors (so that the mass-failure
// guard stays out of it), and checks the kind recorded, the marks, that no
// run outlives a generous deadline and that no body is read past its size.
func TestFaults(t *testing.T) {
	t.Parallel()
	for _, tt := range faultTable {
		t.Run(string(tt.fault), func(t *testing.T) {
			t.Parallel()
			w := world.New(t, nil)
			d := w.Deps
			d.Client = faultClient(t, d)
			w.Static(t, "good1")
			w.Static(t, "good2")
			fm, err := faultmirror.New(tt.fault, w.Rel, faultFile)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { fm.Close() })
			id := w.AddMirror(t, fm.Name, fm.URL, nil)
			// The mirror held the release before, verified by sentry:
			// "active unchanged" is visible.
			for _, loc := range []int{w.LocWin, w.LocLin} {
				factory.LocationMirror(context.Background(), t, w.Pool(), &factory.LocationMirrorOpts{LocationID: loc, MirrorID: id,
					Active: factory.Ptr(true), Healthy: factory.Ptr(true)})
			}
			factory.MirrorVerified(context.Background(), t, w.Pool(), &factory.MirrorVerifiedOpts{MirrorID: id})
			path := faultFile
			if tt.fault.Whole() {
				path = ""
			}
			// Time is bounded: every run ends well inside this.
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()

			rep, err := sentry.Prime(ctx, d, sentry.PrimeOptions{Release: "1.5"})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Outcome != store.OutcomeCompleted {
				t.Fatalf("prime outcome %s: %s", rep.Outcome, rep.Reason)
			}
			s := world.MirrorSums(t, rep, fm.Name)
			if s.State != tt.state || !s.Marked {
				t.Errorf("prime summary %+v; want state %s, marked", s, tt.state)
			}
			if got := kindsOf(t, w, rep.RunID, id, path); !onlyKind(got, tt.prime, tt.fault.Whole()) {
				t.Errorf("prime recorded %v; want %s", got, tt.prime)
			}
			wantLin := world.Good
			if tt.fault.Whole() {
				wantLin = tt.win
			}
			marks := w.Marks(t)
			if marks[w.LocWin][id] != tt.win || marks[w.LocLin][id] != wantLin {
				t.Errorf("after prime: win32 %s, linux %s; want %s, %s", markWords[marks[w.LocWin][id]],
					markWords[marks[w.LocLin][id]], markWords[tt.win], markWords[wantLin])
			}
			// The redirector offers the faulty mirror only where its
			// location is good.
			wantOffered := 2
			if tt.win == world.Good {
				wantOffered = 3
			}
			if got := len(w.Redirector(t, w.LocWin, true)); got != wantOffered {
				t.Errorf("redirector offers %d mirrors for win32, want %d", got, wantOffered)
			}

			for _, deep := range []bool{false, true} {
				want, name := tt.light, "light sweep"
				if deep {
					want, name = tt.deep, "deep sweep"
				}
				srep, err := sentry.Sweep(ctx, d, sentry.SweepOptions{Deep: deep})
				if err != nil {
					t.Fatal(err)
				}
				if srep.Outcome != store.OutcomeCompleted {
					t.Fatalf("%s outcome %s: %s", name, srep.Outcome, srep.Reason)
				}
				if got := kindsOf(t, w, srep.RunID, id, path); !onlyKind(got, want, tt.fault.Whole() && want != "ok") {
					t.Errorf("%s recorded %v; want %s", name, got, want)
				}
				// Sweeps never make a known-bad file good, and
				// transient trouble never takes a file away.
				after := w.Marks(t)
				if after[w.LocWin][id] != tt.win || after[w.LocLin][id] != wantLin {
					t.Errorf("after the %s: win32 %s, linux %s; want %s, %s", name, markWords[after[w.LocWin][id]],
						markWords[after[w.LocLin][id]], markWords[tt.win], markWords[wantLin])
				}
			}

			// Never trust a mirror: no body was read past its size + 1.
			var over int64
			if err := w.Pool().QueryRow(context.Background(), `SELECT coalesce(max(c.bytes - f.size), 0)
					FROM sentry_checks c JOIN sentry_release_files f ON f.release_id = c.release_id AND f.path = c.path
					WHERE c.mirror_id = $1 AND c.method = 'GET'`, id).Scan(&over); err != nil {
				t.Fatal(err)
			}
			if over > 1 {
				t.Errorf("a body was read %d bytes past its size", over)
			}
			if ctx.Err() != nil {
				t.Errorf("the runs took longer than their deadline")
			}
			if n := fm.InternalRequests(); n != 0 {
				t.Errorf("the redirect into sentry's network was followed %d times", n)
			}
			if fm.FaultyRequests() == 0 && tt.fault != faultmirror.Refused && tt.fault != faultmirror.Unresolvable && tt.fault != faultmirror.BadCertificate {
				t.Errorf("the fault was never served")
			}
		})
	}
}

// TestFaultsDocMatchesTable keeps docs/FAULTS.md true: its table lists
// exactly the faults of faultTable, in order, with the same kinds and marks.
func TestFaultsDocMatchesTable(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../docs/FAULTS.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	inTable := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break // the first table only
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.Trim(strings.TrimSpace(cells[i]), "`")
		}
		if !inTable { // the header
			inTable = true
			continue
		}
		if strings.HasPrefix(cells[0], "---") {
			continue
		}
		rows = append(rows, cells)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(faultTable) {
		t.Errorf("docs/FAULTS.md lists %d faults, the test table %d", len(rows), len(faultTable))
	}
	if got, want := len(faultTable), len(faultmirror.All()); got != want {
		t.Errorf("the test table has %d faults, the fault mirror %d", got, want)
	}
	for i, tt := range faultTable {
		if faultmirror.All()[i] != tt.fault {
			t.Errorf("row %d: test table has %q, faultmirror.All %q", i+1, tt.fault, faultmirror.All()[i])
		}
		if i >= len(rows) {
			continue
		}
		scope := "file"
		if tt.fault.Whole() {
			scope = "mirror"
		}
		want := []string{string(tt.fault), scope, string(tt.prime), string(tt.light), string(tt.deep), markWords[tt.win]}
		got := rows[i]
		if len(got) < len(want)+1 {
			t.Errorf("docs row %d %q: %d columns, want %d", i+1, got, len(got), len(want)+1)
			continue
		}
		if strings.Join(got[:len(want)], " | ") != strings.Join(want, " | ") {
			t.Errorf("docs row %d:\n got  %s\n want %s", i+1, strings.Join(got[:len(want)], " | "), strings.Join(want, " | "))
		}
	}
}
