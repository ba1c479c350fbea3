package mirrorjob

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/engine"
)

func TestLines(t *testing.T) {
	type result struct {
		Name string `json:"name"`
		Gone bool   `json:"gone"`
	}
	rows := []engine.WorkRow{
		{MirrorID: 1, Files: json.RawMessage(`{"name":"done"}`)},
		{MirrorID: 2}, // never done, named
		{MirrorID: 3, Files: json.RawMessage(`{"name":"left","gone":true}`)},
		{MirrorID: 4}, // never done, no name known
	}
	got, err := Lines(rows, map[int]string{2: "two"}, func(r result) (string, bool) {
		return "line " + r.Name, !r.Gone
	}, func(id int, name string) string {
		return "undone " + name
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"line done", "undone two", "undone mirror 4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}

	none, err := Lines(nil, nil, func(r result) (string, bool) { return "", true }, func(int, string) string { return "" })
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("no rows: %#v, %v; want an empty list, not null", none, err)
	}

	_, err = Lines([]engine.WorkRow{{MirrorID: 7, Files: json.RawMessage(`[`)}}, nil,
		func(r result) (string, bool) { return "", true }, func(int, string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "mirror 7") {
		t.Errorf("a row that does not decode: %v, want an error naming its mirror", err)
	}
}

func TestKeepEarliest(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var since time.Time
	var line string
	fail := func(kind checks.Kind, detail string) checks.Result { return checks.Result{Kind: kind, Detail: detail} }
	KeepEarliest(&since, &line, t0, "a.bin", fail(checks.KindNotFound, "HTTP 404 Not Found"))
	KeepEarliest(&since, &line, t0.Add(time.Second), "b.bin", fail(checks.KindTimeout, "later"))
	if want := "not_found a.bin: HTTP 404 Not Found"; line != want || !since.Equal(t0) {
		t.Errorf("after a later failure: %q at %v, want %q at %v", line, since, want, t0)
	}
	KeepEarliest(&since, &line, t0.Add(-time.Second), "c.bin", fail(checks.KindSizeMismatch, "size 1, want 2"))
	if want := "size_mismatch c.bin: size 1, want 2"; line != want {
		t.Errorf("after an earlier failure: %q, want %q", line, want)
	}
}

func TestMaxDownFraction(t *testing.T) {
	cfg := config.Default()
	cfg.Guard.MaxDownFraction = 0.25
	if got := MaxDownFraction(&cfg, false); got != 0.25 {
		t.Errorf("every mirror: %v, want guard.max_down_fraction", got)
	}
	if got := MaxDownFraction(&cfg, true); got != 1 {
		t.Errorf("restricted to some mirrors: %v, want 1 (only the master holds the guard)", got)
	}
}

func TestReadParams(t *testing.T) {
	var v struct{ Deep bool }
	if err := ReadParams(engine.Run{ID: 9, Params: json.RawMessage(`{"Deep":true}`)}, &v); err != nil || !v.Deep {
		t.Errorf("read %+v, %v", v, err)
	}
	if err := ReadParams(engine.Run{ID: 9, Params: json.RawMessage(`{`)}, &v); err == nil ||
		!strings.Contains(err.Error(), "read the parameters of run 9") {
		t.Errorf("bad parameters: %v, want an error naming the run", err)
	}
	if err := ReadRequest(engine.Run{ID: 9, Params: json.RawMessage(`{`)}, &v); err == nil ||
		!strings.Contains(err.Error(), "read the request of run 9") {
		t.Errorf("bad request: %v, want an error naming the run", err)
	}
}
