package cli

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/report"
)

func TestParseSince(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{"24h", now.Add(-24 * time.Hour), ""},
		{"7d", now.Add(-7 * 24 * time.Hour), ""},
		{"2026-11-20", time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), ""},
		{"2026-11-25T10:30:00+01:00", time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), ""},
		{"0s", time.Time{}, "positive"},
		{"2027-01-01", time.Time{}, "not in the past"},
		{"yesterday", time.Time{}, "neither a duration"},
	} {
		got, err := report.ParseSince(c.in, now)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !got.Equal(c.want) {
			t.Errorf("%q: %v %v, want %v", c.in, got, err, c.want)
		}
	}
}

// reportWorld primes release 1.5 on a good mirror and one missing a file.
func reportWorld(t *testing.T) *primeWorld {
	t.Helper()
	w := setupPrime(t)
	w.goodMirror(t, "good")
	s, err := localmirror.NewStatic("a-mirror-with-a-rather-long-name-missing-one-file", w.Rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.Remove(w.Rel, "win32/Firefox Setup 1.5.exe")
	w.mirror(t, "a-mirror-with-a-rather-long-name-missing-one-file", s.URL)
	if code, out, errs := run(t, nil, "prime", "--config", w.Config, "--release", "1.5"); code != ExitOK {
		t.Fatalf("prime: %d %s %s", code, out, errs)
	}
	return w
}

func fits80(t *testing.T, out string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("line of %d columns: %q", n, l)
		}
	}
}

func TestReportCommand(t *testing.T) {
	t.Parallel()
	w := reportWorld(t)
	long := "a-mirror-with-a-rather-long-name-missing-one-file"

	// JSON: the documented fields, and the numbers of the prime.
	code, out, errs := run(t, nil, "report", "--config", w.Config, "--format", "json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var mirrors struct {
		Since   time.Time `json:"since"`
		Mirrors []struct {
			Name           string           `json:"name"`
			Checks         int64            `json:"checks"`
			Failures       int64            `json:"failures"`
			FailuresByKind map[string]int64 `json:"failures_by_kind"`
			FilesMissing   int64            `json:"files_missing"`
			LastFailure    *struct {
				Kind, Path, Detail string
			} `json:"last_failure"`
		} `json:"mirrors"`
	}
	if err := json.Unmarshal([]byte(out), &mirrors); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	if len(mirrors.Mirrors) != 2 || mirrors.Since.IsZero() {
		t.Fatalf("report: %s", out)
	}
	m := mirrors.Mirrors[0] // by name: the long one first
	if m.Name != long || m.FilesMissing != 1 || m.FailuresByKind["not_found"] != 1 || m.Failures != 1 ||
		m.LastFailure == nil || m.LastFailure.Path != "win32/Firefox Setup 1.5.exe" || m.LastFailure.Kind != "not_found" {
		t.Errorf("missing mirror: %+v", m)
	}
	if g := mirrors.Mirrors[1]; g.Name != "good" || g.Failures != 0 || g.Checks == 0 || g.LastFailure != nil {
		t.Errorf("good mirror: %+v", g)
	}

	// CSV: a header and a record per mirror, the same numbers.
	code, out, errs = run(t, nil, "report", "--config", w.Config, "--format", "csv", "--since", "7d")
	if code != ExitOK {
		t.Fatalf("csv: exit %d: %s", code, errs)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 3 {
		t.Fatalf("CSV: %v %q", err, out)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	if recs[1][col["name"]] != long || recs[1][col["failures_not_found"]] != "1" || recs[1][col["files_missing"]] != "1" {
		t.Errorf("CSV record: %v", recs[1])
	}

	// The table fits 80 columns, names the mirrors and the failure.
	code, out, _ = run(t, nil, "report", "--config", w.Config)
	if code != ExitOK || !strings.Contains(out, "not_found") || !strings.Contains(out, "good") {
		t.Errorf("table: exit %d\n%s", code, out)
	}
	fits80(t, out)

	// One mirror.
	code, out, errs = run(t, nil, "report", "--config", w.Config, "--mirror", long, "--format", "json")
	if code != ExitOK {
		t.Fatalf("--mirror: exit %d: %s", code, errs)
	}
	var detail struct {
		FailingFiles []struct{ Path, Kind string } `json:"failing_files"`
	}
	if err := json.Unmarshal([]byte(out), &detail); err != nil || len(detail.FailingFiles) != 1 ||
		detail.FailingFiles[0].Kind != "not_found" {
		t.Errorf("--mirror JSON: %v %s", err, out)
	}
	code, out, _ = run(t, nil, "report", "--config", w.Config, "--mirror", long)
	if code != ExitOK || !strings.Contains(out, "Firefox Setup 1.5.exe") {
		t.Errorf("--mirror table: %d\n%s", code, out)
	}
	fits80(t, out)
	code, out, _ = run(t, nil, "report", "--config", w.Config, "--mirror", long, "--format", "csv")
	// The failing file, its run of failures and the vantage point's counts.
	if recs, err := csv.NewReader(strings.NewReader(out)).ReadAll(); code != ExitOK || err != nil || len(recs) != 4 || recs[1][0] != "file" ||
		recs[2][0] != "failure" || recs[3][0] != "vantage" {
		t.Errorf("--mirror CSV: %d %v %q", code, err, out)
	}

	// A release's uptake.
	code, out, errs = run(t, nil, "report", "--config", w.Config, "--release", "1.5", "--format", "json")
	if code != ExitOK {
		t.Fatalf("--release: exit %d: %s", code, errs)
	}
	var rel struct {
		Files    int `json:"files"`
		Complete int `json:"mirrors_complete"`
		Uptake   []struct {
			Path    string `json:"path"`
			Mirrors int    `json:"mirrors"`
		} `json:"files_uptake"`
	}
	if err := json.Unmarshal([]byte(out), &rel); err != nil || rel.Files != 2 || rel.Complete != 1 || len(rel.Uptake) != 2 {
		t.Fatalf("--release JSON: %v %s", err, out)
	}
	for _, f := range rel.Uptake {
		want := 2
		if f.Path == "win32/Firefox Setup 1.5.exe" {
			want = 1
		}
		if f.Mirrors != want {
			t.Errorf("%s on %d mirrors, want %d", f.Path, f.Mirrors, want)
		}
	}
	code, out, _ = run(t, nil, "report", "--config", w.Config, "--release", "1.5")
	if code != ExitOK || !strings.Contains(out, "1 of 2 mirrors the redirector") || !strings.Contains(out, "\ntime to capacity: 50% ") {
		t.Errorf("--release table: %d\n%s", code, out)
	}
	fits80(t, out)
	code, out, _ = run(t, nil, "report", "--config", w.Config, "--release", "1.5", "--format", "csv")
	if recs, err := csv.NewReader(strings.NewReader(out)).ReadAll(); code != ExitOK || err != nil || len(recs) != 5 {
		t.Errorf("--release CSV: %d %v %q", code, err, out)
	}
}

func TestReportCommandErrors(t *testing.T) {
	t.Parallel()
	w := setupPrime(t)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		// A mirror or release that does not exist: one line, exit 1.
		{[]string{"--mirror", "nosuch"}, ExitFailure, "sentry report: mirror \"nosuch\": not found\n"},
		{[]string{"--release", "9.9"}, ExitFailure, "sentry report: uptake of release 9.9: release \"9.9\": not found"},
		{[]string{"--release", "../x"}, ExitUsage, "--release"},
		{[]string{"--since", "soon"}, ExitUsage, "--since"},
		{[]string{"--mirror", "a", "--release", "1.5"}, ExitUsage, "give one"},
	} {
		code, _, errs := run(t, nil, append([]string{"report", "--config", w.Config}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", c.args, code, errs, c.code, c.want)
		}
		if c.code == ExitFailure && strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: not one line: %q", c.args, errs)
		}
	}
}
