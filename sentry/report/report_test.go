package report_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/report"
)

// oracle is what the checks sentry made say, computed the slow way: every
// check seen (routine ones are only counted in the database) kept and
// counted in Go.
type oracle struct {
	checks, failures map[int]int64
	byKind           map[int]map[string]int64
	last             map[int]time.Time // newest check
	lastFail         map[int]string    // newest failure's kind
	latest           map[[2]any]string // (mirror, path) → latest non-internal result
	firstOK          map[[2]any]time.Time
}

func loadOracle(t *testing.T, w *world.ReportWorld, since time.Time) *oracle {
	t.Helper()
	o := &oracle{checks: map[int]int64{}, failures: map[int]int64{}, byKind: map[int]map[string]int64{},
		last: map[int]time.Time{}, lastFail: map[int]string{}, latest: map[[2]any]string{}, firstOK: map[[2]any]time.Time{}}
	for _, c := range w.Seen.All() {
		// The database keeps microseconds.
		m, path, at, result := c.MirrorID, c.Path, c.At.Round(0).Truncate(time.Microsecond), string(c.Result)
		if at.After(o.last[m]) {
			o.last[m] = at
		}
		if path != "" && result != "internal" {
			o.latest[[2]any{m, path}] = result
		}
		if path != "" && result == "ok" && c.Hashed {
			if _, ok := o.firstOK[[2]any{m, path}]; !ok {
				o.firstOK[[2]any{m, path}] = at
			}
		}
		if at.Before(since) {
			continue
		}
		o.checks[m]++
		if result != "ok" && result != "unchanged" {
			o.failures[m]++
			if o.byKind[m] == nil {
				o.byKind[m] = map[string]int64{}
			}
			o.byKind[m][result]++
			o.lastFail[m] = result
		}
	}
	return o
}

func TestReportMirrorsEqualsRecordedChecks(t *testing.T) {
	t.Parallel()
	w := world.NewReportWorld(t)
	ctx := context.Background()
	now := time.Now()
	win := report.Window{Since: now.Add(-24 * time.Hour), Until: now.Add(time.Second)}
	rep, err := report.New(w.Pool(), nil).Mirrors(ctx, win)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Since.Equal(win.Since.Truncate(time.Hour)) {
		t.Errorf("window from %v, want the start of the hour of %v", rep.Since, win.Since)
	}
	o := loadOracle(t, w, rep.Since)
	if len(rep.Mirrors) != 5 {
		t.Fatalf("%d mirrors in the report, want 5", len(rep.Mirrors))
	}
	for _, m := range rep.Mirrors {
		if m.Checks != o.checks[m.ID] || m.Failures != o.failures[m.ID] {
			t.Errorf("%s: checks %d failures %d, the recorded checks say %d and %d", m.Name, m.Checks, m.Failures, o.checks[m.ID], o.failures[m.ID])
		}
		if len(m.FailuresByKind) != len(o.byKind[m.ID]) {
			t.Errorf("%s: by kind %v, recorded %v", m.Name, m.FailuresByKind, o.byKind[m.ID])
		}
		for k, n := range o.byKind[m.ID] {
			if m.FailuresByKind[k] != n {
				t.Errorf("%s: %s %d, recorded %d", m.Name, k, m.FailuresByKind[k], n)
			}
		}
		if m.LastCheck == nil || !m.LastCheck.Equal(o.last[m.ID]) {
			t.Errorf("%s: last check %v, recorded %v", m.Name, m.LastCheck, o.last[m.ID])
		}
		if want := o.lastFail[m.ID]; (want == "") != (m.LastFailure == nil) || (want != "" && m.LastFailure.Kind != want) {
			t.Errorf("%s: last failure %+v, recorded %q", m.Name, m.LastFailure, want)
		}
		var missing, corrupt int64
		for k, res := range o.latest {
			if k[0] != m.ID {
				continue
			}
			switch res {
			case "not_found", "forbidden", "not_primed":
				missing++
			case "size_mismatch", "checksum_mismatch", "truncated", "too_large":
				corrupt++
			}
		}
		if m.FilesMissing != missing || m.FilesCorrupt != corrupt {
			t.Errorf("%s: missing %d corrupt %d, recorded %d and %d", m.Name, m.FilesMissing, m.FilesCorrupt, missing, corrupt)
		}
	}
	// And what the fixture says, so that the oracle is not trivially empty.
	byName := map[string]report.MirrorRow{}
	for _, m := range rep.Mirrors {
		byName[m.Name] = m
	}
	if m := byName["corrupt"]; m.FilesCorrupt != 1 || m.FailuresByKind["checksum_mismatch"] < 1 || m.State != "up" {
		t.Errorf("corrupt: %+v", m)
	}
	if m := byName["missing"]; m.FilesMissing != 1 || m.FailuresByKind["not_found"] < 1 {
		t.Errorf("missing: %+v", m)
	}
	if m := byName["flaky"]; m.State != "down" || m.StateSince == nil || m.FailuresByKind["http_status"] < 1 ||
		m.LastFailure == nil || m.LastFailure.Detail == "" {
		t.Errorf("flaky: %+v %+v", m, m.LastFailure)
	}
	if m := byName["good1"]; m.Failures != 0 || m.State != "up" || m.Checks == 0 {
		t.Errorf("good1: %+v", m)
	}

	// A window after every check: nothing counted, last check still shown.
	later, err := report.New(w.Pool(), nil).Mirrors(ctx, report.Window{Since: now.Add(time.Hour), Until: now.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range later.Mirrors {
		if m.Checks != 0 || m.Failures != 0 || m.LastFailure != nil || m.LastCheck == nil {
			t.Errorf("empty window: %+v", m)
		}
	}
}

func TestReportMirrorDetail(t *testing.T) {
	t.Parallel()
	w := world.NewReportWorld(t)
	ctx := context.Background()
	now := time.Now()
	win := report.Window{Since: now.Add(-24 * time.Hour), Until: now.Add(time.Second)}
	r := report.New(w.Pool(), nil)

	flaky, err := r.Mirror(ctx, "flaky", win)
	if err != nil {
		t.Fatal(err)
	}
	if len(flaky.History) != 1 || flaky.History[0].From != "up" || flaky.History[0].To != "down" || flaky.History[0].Reason == "" {
		t.Errorf("flaky history: %+v", flaky.History)
	}
	// An unreachable mirror's files are not checked: none is listed failing.
	if flaky.FailingTotal != 0 || len(flaky.FailingFiles) != 0 || flaky.Mirror.LastFailure == nil {
		t.Errorf("flaky failing files: %d %+v", flaky.FailingTotal, flaky.FailingFiles)
	}

	corrupt, err := r.Mirror(ctx, "corrupt", win)
	if err != nil {
		t.Fatal(err)
	}
	if len(corrupt.FailingFiles) != 1 {
		t.Fatalf("corrupt failing files: %+v", corrupt.FailingFiles)
	}
	f := corrupt.FailingFiles[0]
	// The prime found it corrupt; the deep sweep hashed it again (a
	// never-verified pair is always picked) and still found it corrupt.
	if f.Path != "win32/de/Firefox Setup 1.5.exe" || f.Kind != "checksum_mismatch" || f.Release != "1.5" ||
		!f.LastSeen.After(f.FirstSeen) {
		t.Errorf("corrupt file: %+v", f)
	}
	var first, last time.Time
	if err := w.Pool().QueryRow(ctx, `SELECT min(checked_at), max(checked_at) FROM sentry_checks
		WHERE mirror_id = $1 AND path = $2 AND result NOT IN ('ok', 'unchanged', 'internal')`,
		w.IDs["corrupt"], f.Path).Scan(&first, &last); err != nil {
		t.Fatal(err)
	}
	if !f.FirstSeen.Equal(first) || !f.LastSeen.Equal(last) {
		t.Errorf("first/last seen %v %v, recorded %v %v", f.FirstSeen, f.LastSeen, first, last)
	}
	if len(corrupt.History) != 0 {
		t.Errorf("corrupt mirror changed state: %+v", corrupt.History)
	}

	if _, err := r.Mirror(ctx, "nosuch", win); err == nil {
		t.Error("a mirror that does not exist: no error")
	}
}

func TestReportReleaseUptake(t *testing.T) {
	t.Parallel()
	w := world.NewReportWorld(t)
	ctx := context.Background()
	rel, err := report.New(w.Pool(), nil).Release(ctx, "1.5")
	if err != nil {
		t.Fatal(err)
	}
	o := loadOracle(t, w, time.Time{})
	total := 0
	for _, r := range w.Ratings {
		total += r
	}
	if rel.Files != 4 || rel.ActiveMirrors != 5 || rel.RatingTotal != total || rel.FirstPrime == nil {
		t.Fatalf("release: %+v", rel)
	}
	// Per file: the mirrors, active and not down, whose latest check of it
	// is good and that verified it once.
	for _, f := range rel.FileList {
		n, ratings := 0, 0
		for name, id := range w.IDs {
			if name == "flaky" { // down since the second sweep
				continue
			}
			res := o.latest[[2]any{id, f.Path}]
			_, verified := o.firstOK[[2]any{id, f.Path}]
			if (res == "ok" || res == "unchanged") && verified {
				n++
				ratings += w.Ratings[name]
			}
		}
		if f.Mirrors != n || f.Weighted == nil || *f.Weighted != float64(ratings)/float64(total) {
			t.Errorf("%s: %d mirrors weighted %v; recorded %d, %d/%d", f.Path, f.Mirrors, f.Weighted, n, ratings, total)
		}
	}
	// good1 and good2 hold everything: (50+30)/100.
	if rel.Complete != 2 || rel.Weighted == nil || *rel.Weighted != 0.8 {
		t.Errorf("complete %d weighted %v", rel.Complete, rel.Weighted)
	}
	// Time to verified: the last of the first verifications, from the
	// first prime; only for mirrors that verified every file.
	var done []time.Time
	for _, m := range rel.Mirrors {
		var last time.Time
		all := true
		for _, f := range rel.FileList {
			at, ok := o.firstOK[[2]any{m.ID, f.Path}]
			if !ok {
				all = false
				break
			}
			if at.After(last) {
				last = at
			}
		}
		switch {
		case all && (m.VerifiedAt == nil || !m.VerifiedAt.Equal(last) || m.Seconds == nil ||
			*m.Seconds != last.Sub(*rel.FirstPrime).Seconds()):
			t.Errorf("%s: verified at %v (%v s), recorded %v", m.Name, m.VerifiedAt, m.Seconds, last)
		case !all && m.VerifiedAt != nil:
			t.Errorf("%s: verified at %v, but not every file was", m.Name, m.VerifiedAt)
		}
		if all {
			done = append(done, last)
		}
	}
	// flaky verified everything in the prime, then went bad: it counts in
	// the chart (when it got there), not in the current uptake.
	if len(done) != 3 || len(rel.OverTime) != 3 {
		t.Fatalf("over time %+v, recorded completions %v", rel.OverTime, done)
	}
	sort.Slice(done, func(i, j int) bool { return done[i].Before(done[j]) })
	for i, p := range rel.OverTime {
		if p.Mirrors != i+1 || !p.At.Equal(done[i]) {
			t.Errorf("step %d: %+v, recorded %v", i, p, done[i])
		}
	}
	if _, err := report.New(w.Pool(), nil).Release(ctx, "9.9"); err == nil {
		t.Error("an unknown release: no error")
	}
}
