package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/metrics"
	"github.com/mirrorsentry/sentry/sentry/report"
)

// setVantages writes what a sweep shared by several vantage points leaves
// in sentry_mirror_state: the vantage points the mirror failed from and
// those that checked it.
func setVantages(t *testing.T, w *world.ReportWorld, mirror string, failing, checked []string) {
	t.Helper()
	tag, err := w.Pool().Exec(context.Background(),
		`UPDATE sentry_mirror_state SET failing_from = $2, checked_from = $3 WHERE mirror_id = $1`,
		w.IDs[mirror], failing, checked)
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != 1 {
		t.Fatalf("%s has no sentry_mirror_state row", mirror)
	}
}

// linesFit fails on a line wider than 80 columns.
func linesFit(t *testing.T, what, out string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("%s: line of %d columns: %q", what, n, l)
		}
	}
}

// noteOf is the vantage note under mirror name's row in the per-mirror
// table, "" when the next line is another row, a why or a failure line.
func noteOf(table, name string) string {
	lines := strings.Split(table, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, name+" ") && i+1 < len(lines) {
			next := strings.TrimSpace(lines[i+1])
			if strings.HasPrefix(lines[i+1], "    ") && !strings.HasPrefix(next, "failures:") && !strings.HasPrefix(next, "last:") &&
				!strings.HasPrefix(next, "why:") {
				return next
			}
			return ""
		}
	}
	return "(no row)"
}

// TestPartiallyUnreachableMirror: a mirror up but failing from one of
// three vantage points is reported "partial", naming the vantage point,
// in the report (JSON, table, CSV, --mirror), on the status page and its
// API, and in sentry_mirror_failing_vantages; a mirror failing from none
// is not.
func TestPartiallyUnreachableMirror(t *testing.T) {
	t.Parallel()
	w, srv := world.StatusPage(t)
	ctx := context.Background()
	pool := w.Pool()
	all := []string{"eu", "us", "ap"}
	setVantages(t, w, "good2", []string{"eu"}, all)       // up: partial
	setVantages(t, w, "flaky", []string{"us", "eu"}, all) // down by quorum, ap still reaches it
	setVantages(t, w, "corrupt", all, all)                // failing everywhere, up by hysteresis: not partial
	setVantages(t, w, "good1", []string{}, all)           // reached from all
	setVantages(t, w, "missing", []string{}, []string{})  // as before any multi-vantage sweep
	// Checks of good2 from two more vantage points in this hour.
	hour := time.Now().UTC().Truncate(time.Hour)
	if _, err := pool.Exec(ctx, `INSERT INTO sentry_check_hourly (mirror_id, hour, vantage, result, n)
		VALUES ($1, $2, 'eu', 'timeout', 4), ($1, $2, 'us', 'ok', 6)`, w.IDs["good2"], hour); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	win := report.Window{Since: now.Add(-24 * time.Hour), Until: now.Add(time.Second)}
	rep := report.New(pool, nil)

	t.Run("report JSON", func(t *testing.T) {
		ms, err := rep.Mirrors(ctx, win)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := report.WriteJSON(&buf, ms); err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Mirrors []map[string]any `json:"mirrors"`
		}
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		got := map[string]map[string]any{}
		for _, m := range doc.Mirrors {
			got[m["name"].(string)] = m
		}
		for _, c := range []struct {
			name             string
			state            string
			partial          bool
			failing, checked string
		}{
			{"good2", "up", true, `["eu"]`, `["ap","eu","us"]`},
			{"flaky", "down", false, `["eu","us"]`, `["ap","eu","us"]`},
			{"corrupt", "up", false, `["ap","eu","us"]`, `["ap","eu","us"]`},
			{"good1", "up", false, `[]`, `["ap","eu","us"]`},
			{"missing", "up", false, `[]`, `[]`}, // never null
		} {
			m := got[c.name]
			f, _ := json.Marshal(m["failing_from"])
			ch, _ := json.Marshal(m["checked_from"])
			if m["state"] != c.state || m["partial"] != c.partial || string(f) != c.failing || string(ch) != c.checked {
				t.Errorf("%s: state %v partial %v failing_from %s checked_from %s; want %s %v %s %s",
					c.name, m["state"], m["partial"], f, ch, c.state, c.partial, c.failing, c.checked)
			}
		}
		if !strings.Contains(buf.String(), `"failing_from": []`) || strings.Contains(buf.String(), "null,\n      \"checked_from\"") {
			t.Errorf("empty vantage lists are not []:\n%s", buf.String())
		}
	})

	t.Run("report table", func(t *testing.T) {
		ms, err := rep.Mirrors(ctx, win)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := report.WriteMirrorsTable(&buf, ms, now, false); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		linesFit(t, "mirrors table", out)
		for name, want := range map[string]string{
			"good2":   "partial: fails from eu (1/3)",
			"flaky":   "down by quorum: fails from eu, us (2/3)",
			"corrupt": "fails from ap, eu, us (3/3)",
			"good1":   "",
			"missing": "",
		} {
			if got := noteOf(out, name); got != want {
				t.Errorf("%s: note %q, want %q\n%s", name, got, want, out)
			}
		}

		d, err := rep.Mirror(ctx, "good2", win)
		if err != nil {
			t.Fatal(err)
		}
		buf.Reset()
		if err := report.WriteMirrorTable(&buf, d, now, false); err != nil {
			t.Fatal(err)
		}
		out = buf.String()
		linesFit(t, "--mirror good2", out)
		flat := strings.Join(strings.Fields(out), " ")
		for _, want := range []string{
			"Partially unreachable: at its last sweep it failed from eu and was reached from ap, us (1 of 3 vantage points failed",
			"from eu: 4 checks, 4 failed", "from us: 6 checks, 0 failed",
		} {
			if !strings.Contains(flat, want) {
				t.Errorf("--mirror good2 lacks %q:\n%s", want, out)
			}
		}
		buf.Reset()
		d, err = rep.Mirror(ctx, "flaky", win)
		if err != nil {
			t.Fatal(err)
		}
		if err := report.WriteMirrorTable(&buf, d, now, false); err != nil {
			t.Fatal(err)
		}
		if flat := strings.Join(strings.Fields(buf.String()), " "); !strings.Contains(flat,
			"Down by quorum: at its last sweep it failed from eu, us (2 of 3 vantage points) while still reached from ap.") {
			t.Errorf("--mirror flaky:\n%s", buf.String())
		}
	})

	t.Run("report by vantage", func(t *testing.T) {
		d, err := rep.Mirror(ctx, "good2", win)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Mirror.Partial || len(d.ByVantage) != 3 {
			t.Fatalf("good2: partial %v, by vantage %+v", d.Mirror.Partial, d.ByVantage)
		}
		var checks, failures int64
		seen := map[string]report.VantageCount{}
		for _, v := range d.ByVantage {
			checks, failures = checks+v.Checks, failures+v.Failures
			seen[v.Vantage] = v
		}
		if seen["eu"].Checks != 4 || seen["eu"].Failures != 4 || seen["us"].Checks != 6 || seen["us"].Failures != 0 {
			t.Errorf("by vantage: %+v", d.ByVantage)
		}
		if checks != d.Mirror.Checks || failures != d.Mirror.Failures {
			t.Errorf("by vantage adds up to %d checks %d failures, the row says %d %d", checks, failures, d.Mirror.Checks, d.Mirror.Failures)
		}
	})

	t.Run("report CSV", func(t *testing.T) {
		ms, err := rep.Mirrors(ctx, win)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := report.WriteMirrorsCSV(&buf, ms); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		col := map[string]int{}
		for i, h := range recs[0] {
			col[h] = i
		}
		for _, r := range recs[1:] {
			want := [3]string{"", "ap;eu;us", "false"}
			switch r[col["name"]] {
			case "good2":
				want = [3]string{"eu", "ap;eu;us", "true"}
			case "flaky":
				want = [3]string{"eu;us", "ap;eu;us", "false"}
			case "corrupt":
				want = [3]string{"ap;eu;us", "ap;eu;us", "false"}
			case "missing":
				want = [3]string{"", "", "false"}
			}
			if got := [3]string{r[col["failing_from"]], r[col["checked_from"]], r[col["partial"]]}; got != want {
				t.Errorf("%s: %v, want %v", r[col["name"]], got, want)
			}
		}
	})

	t.Run("status page", func(t *testing.T) {
		code, body, h := world.Get(t, srv.URL+"/")
		if code != 200 || !strings.Contains(body, "partially unreachable from eu (1 of 3 vantage points)") ||
			!strings.Contains(body, "down by quorum: unreachable from eu, us, reachable from ap") {
			t.Errorf("/: %d\n%s", code, body)
		}
		if strings.Count(body, "partially unreachable from") != 1 || strings.Contains(body, "<script") ||
			!strings.HasPrefix(h.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("/: %d partial notes, or a script, or CSP %q", strings.Count(body, "partially unreachable from"), h.Get("Content-Security-Policy"))
		}
		code, body, _ = world.Get(t, srv.URL+"/mirrors/good2")
		if code != 200 || !strings.Contains(body, "Partially unreachable: at its last sweep it failed from eu and was reached from ap, us") ||
			!strings.Contains(body, "<td>eu</td><td class=\"n\">4</td><td class=\"n\">4</td><td>failed</td>") {
			t.Errorf("/mirrors/good2: %d\n%s", code, body)
		}
		code, body, _ = world.Get(t, srv.URL+"/mirrors/good1")
		if code != 200 || strings.Contains(body, "artially unreachable") ||
			!strings.Contains(body, "reached from every vantage point that checked it: ap, eu, us") {
			t.Errorf("/mirrors/good1: %d\n%s", code, body)
		}
	})

	t.Run("API", func(t *testing.T) {
		code, body, _ := world.Get(t, srv.URL+"/api/mirrors")
		var ms report.Mirrors
		if err := json.Unmarshal([]byte(body), &ms); code != 200 || err != nil {
			t.Fatalf("/api/mirrors: %d %v", code, err)
		}
		for _, m := range ms.Mirrors {
			if m.FailingFrom == nil || m.CheckedFrom == nil {
				t.Errorf("%s: null vantage lists", m.Name)
			}
			if (m.Name == "good2") != m.Partial {
				t.Errorf("%s: partial %v", m.Name, m.Partial)
			}
			if m.Name == "good2" && (strings.Join(m.FailingFrom, ",") != "eu" || strings.Join(m.CheckedFrom, ",") != "ap,eu,us") {
				t.Errorf("good2: %v %v", m.FailingFrom, m.CheckedFrom)
			}
		}
		if !strings.Contains(body, `"failing_from": [`) || !strings.Contains(body, `"partial": true`) {
			t.Errorf("/api/mirrors lacks the fields:\n%s", body)
		}
		code, body, _ = world.Get(t, srv.URL+"/api/mirrors/good2")
		var d report.MirrorDetail
		if err := json.Unmarshal([]byte(body), &d); code != 200 || err != nil || !d.Mirror.Partial ||
			strings.Join(d.Mirror.FailingFrom, ",") != "eu" || len(d.ByVantage) != 3 {
			t.Errorf("/api/mirrors/good2: %d %v\n%s", code, err, body)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		fams := world.Scrape(t, metrics.New(pool, nil).Handler())
		for name, want := range map[string]float64{"good2": 1, "flaky": 2, "corrupt": 3, "good1": 0, "missing": 0} {
			if v, ok := world.Value(t, fams, "sentry_mirror_failing_vantages", map[string]string{"mirror": name}); !ok || v != want {
				t.Errorf("sentry_mirror_failing_vantages{mirror=%q} = %v (present %v), want %v", name, v, ok, want)
			}
		}
		if v, ok := world.Value(t, fams, "sentry_mirrors", map[string]string{"state": "down"}); !ok || v != 1 {
			t.Errorf("sentry_mirrors{state=down} = %v %v", v, ok)
		}
	})

	// Long vantage names keep the tables in 80 columns; a disabled mirror
	// is never partial, and has no failing-vantages series.
	t.Run("long names and disabled", func(t *testing.T) {
		long := func(s string) string { return s + strings.Repeat("-long-vantage-name", 3) + "-" + s }
		setVantages(t, w, "good2", []string{long("eu"), long("sa")}, []string{long("eu"), long("sa"), long("us"), long("ap")})
		if _, err := pool.Exec(ctx, `UPDATE mirror_mirrors SET active = false WHERE id = $1`, w.IDs["corrupt"]); err != nil {
			t.Fatal(err)
		}
		ms, err := rep.Mirrors(ctx, win)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := report.WriteMirrorsTable(&buf, ms, now, false); err != nil {
			t.Fatal(err)
		}
		linesFit(t, "mirrors table", buf.String())
		if note := noteOf(buf.String(), "good2"); !strings.HasPrefix(note, "partial: fails from eu-long") || !strings.HasSuffix(note, "… (2/4)") {
			t.Errorf("good2: note %q", note)
		}
		if note := noteOf(buf.String(), "corrupt"); note != "" {
			t.Errorf("disabled corrupt: note %q", note)
		}
		for _, m := range ms.Mirrors {
			if m.Name == "corrupt" && (m.State != "disabled" || m.Partial) {
				t.Errorf("corrupt: %s partial %v", m.State, m.Partial)
			}
		}
		d, err := rep.Mirror(ctx, "good2", win)
		if err != nil {
			t.Fatal(err)
		}
		buf.Reset()
		if err := report.WriteMirrorTable(&buf, d, now, false); err != nil {
			t.Fatal(err)
		}
		linesFit(t, "--mirror good2", buf.String())
		if !strings.Contains(buf.String(), long("sa")) {
			t.Errorf("--mirror good2 does not name %s:\n%s", long("sa"), buf.String())
		}
		fams := world.Scrape(t, metrics.New(pool, nil).Handler())
		if v, ok := world.Value(t, fams, "sentry_mirror_failing_vantages", map[string]string{"mirror": "good2"}); !ok || v != 2 {
			t.Errorf("good2: %v %v", v, ok)
		}
		if _, ok := world.Value(t, fams, "sentry_mirror_failing_vantages", map[string]string{"mirror": "corrupt"}); ok {
			t.Error("a disabled mirror has a failing-vantages series")
		}
	})
}
