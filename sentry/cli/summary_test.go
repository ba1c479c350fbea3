package cli

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/prime"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/sweep"
)

// TestSummaryTablesFit80Columns: the prime and sweep summaries fit an
// 80-column terminal whatever the names and failures, end no line with a
// space (a mirror without a failure), and say the outcome.
func TestSummaryTablesFit80Columns(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("very-long-mirror-name-", 5)
	pr := &prime.Report{RunID: 7, Release: "1.5", Outcome: "guarded", Reason: "mass-failure guard held back marking: " + long,
		Files: 9, Locations: 6, Joined: true,
		Unresolved:      []release.Unresolved{{LocationID: 3, Path: "/firefox/releases/1.5/" + long, Reason: "not in the manifest"}},
		MissingProducts: []string{"Firefox-1.5-SSL"},
		Mirrors: []prime.MirrorSums{
			{Name: "good", Mode: "pull", State: "ok", FilesOK: 9, BytesVerified: 3 << 20, Seconds: 0.12},
			{Name: long, Mode: "trigger", State: "partial", FilesOK: 8, FilesFailed: 1,
				Failures: map[checks.Kind]int{checks.KindChecksumMismatch: 1}, FirstFailure: "checksum_mismatch " + long, Seconds: 61},
		}}
	var b bytes.Buffer
	if err := writePrimeTable(&b, pr, false); err != nil {
		t.Fatal(err)
	}
	fits(t, b.String())
	for _, want := range []string{"good", "outcome: guarded", "already running", "no bouncer product \"Firefox-1.5-SSL\""} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("prime table lacks %q:\n%s", want, b.String())
		}
	}
	sr := &sweep.Report{RunID: 8, Kind: "deep_sweep", Outcome: "completed", Files: 6, Releases: []string{"1.5"},
		Mirrors: []sweep.MirrorSums{
			{Name: long, Reachable: true, Checked: 6, OK: 5, Failed: 1, State: "up", FirstFailure: "not_found " + long},
			{Name: "dead", State: "down", StateChanged: true, Note: "not checked: the sweep ended first"},
		}}
	b.Reset()
	if err := writeSweepTable(&b, sr, false); err != nil {
		t.Fatal(err)
	}
	fits(t, b.String())
	for _, want := range []string{"deep sweep (run 8)", "down*", "outcome: completed"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("sweep table lacks %q:\n%s", want, b.String())
		}
	}
}

func fits(t *testing.T, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(line); n > 80 {
			t.Errorf("line of %d columns: %q", n, line)
		}
		if strings.HasSuffix(line, " ") {
			t.Errorf("a line ends with a space: %q", line)
		}
	}
}
