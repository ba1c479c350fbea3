package report_test

import (
	"bytes"
	"encoding/csv"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/report"
)

// jsonColumns are the CSV columns the JSON fields of t call for: a field
// NAME is a column NAME, an object OBJ's fields OBJ_FIELD (and a list of
// objects LIST's, LIST_FIELD), and the
// failure counts by kind a column failures_KIND per failure kind.
// Embedded structs without a tag (the window) are the report's, not the
// row's.
func jsonColumns(t reflect.Type, prefix string) []string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" || (f.Anonymous && name == "") {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]():
			out = append(out, jsonColumns(ft, prefix+name+"_")...)
		case ft.Kind() == reflect.Map && name == "failures_by_kind":
			for _, k := range report.FailureKinds() {
				out = append(out, prefix+"failures_"+k)
			}
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, jsonColumns(ft.Elem(), prefix+name+"_")...)
		case ft.Kind() == reflect.Map:
			panic("jsonColumns: no rule for the map field " + name)
		default:
			out = append(out, prefix+name)
		}
	}
	return out
}

func csvHeader(t *testing.T, write func(*bytes.Buffer) error) []string {
	t.Helper()
	var b bytes.Buffer
	if err := write(&b); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("CSV %q: %v", b.String(), err)
	}
	return recs[0]
}

// TestCSVCarriesEveryJSONField: every field the JSON of a report row has
// — a mirror of the per-mirror report (its certificate, families,
// maintenance), one mirror's failing files, state changes, recent
// failures (how their bytes were read) and counts by vantage point, and a
// release's files and mirrors (sampled files) — has its column in the
// CSV. The list comes from the JSON tags: a field added to the JSON and
// not to the CSV fails here.
func TestCSVCarriesEveryJSONField(t *testing.T) {
	t.Parallel()
	type want struct {
		what    string
		header  []string
		rows    []reflect.Type
		renamed map[string]string // JSON name → CSV column, where they differ
	}
	mirrors := csvHeader(t, func(b *bytes.Buffer) error { return report.WriteMirrorsCSV(b, &report.Mirrors{}) })
	mirror := csvHeader(t, func(b *bytes.Buffer) error { return report.WriteMirrorCSV(b, &report.MirrorDetail{}) })
	release := csvHeader(t, func(b *bytes.Buffer) error { return report.WriteReleaseCSV(b, &report.Release{}) })
	for _, w := range []want{
		{"report", mirrors, []reflect.Type{reflect.TypeFor[report.MirrorRow]()}, nil},
		{"report --mirror", mirror, []reflect.Type{reflect.TypeFor[report.FailingFile](), reflect.TypeFor[report.StateChange](),
			reflect.TypeFor[report.FailureRun](), reflect.TypeFor[report.VantageCount]()}, nil},
		{"report --release", release, []reflect.Type{reflect.TypeFor[report.FileUptake](), reflect.TypeFor[report.MirrorUptake]()},
			map[string]string{"path": "name"}},
	} {
		for _, rt := range w.rows {
			for _, c := range jsonColumns(rt, "") {
				col := c
				if r, ok := w.renamed[c]; ok && rt == reflect.TypeFor[report.FileUptake]() {
					col = r
				}
				if !slices.Contains(w.header, col) {
					t.Errorf("%s: the JSON of %s has %q, the CSV no column %q (it has %v)", w.what, rt.Name(), c, col, w.header)
				}
			}
		}
	}
	if n := len(jsonColumns(reflect.TypeFor[report.MirrorRow](), "")); n < 40 {
		t.Errorf("a mirror row's JSON gives %d columns; the rule lost fields", n)
	}
}
