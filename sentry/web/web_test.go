package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/web"
)

func TestStatusPageAndAPI(t *testing.T) {
	t.Parallel()
	w, srv := world.StatusPage(t)

	code, body, h := world.Get(t, srv.URL+"/")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("/: %d %s", code, h.Get("Content-Type"))
	}
	for name := range w.IDs {
		if !strings.Contains(body, `href="/mirrors/`+name+`"`) {
			t.Errorf("/ does not link mirror %s", name)
		}
	}
	// Five history strips of 14 days, the flaky mirror shown down.
	if n := strings.Count(body, "<rect "); n != 5*14 {
		t.Errorf("%d history cells, want %d", n, 5*14)
	}
	if !strings.Contains(body, `<span class="state down">down</span>`) || strings.Contains(body, "<script") {
		t.Errorf("/ lacks the down badge or has a script")
	}

	code, body, _ = world.Get(t, srv.URL+"/mirrors/flaky")
	if code != 200 || !strings.Contains(body, "down after 2 failed sweeps") {
		t.Errorf("/mirrors/flaky: %d\n%s", code, body)
	}
	code, body, _ = world.Get(t, srv.URL+"/mirrors/corrupt")
	if code != 200 || !strings.Contains(body, "checksum_mismatch") || !strings.Contains(body, "win32/de/Firefox Setup 1.5.exe") {
		t.Errorf("/mirrors/corrupt: %d", code)
	}
	code, body, _ = world.Get(t, srv.URL+"/releases/1.5")
	if code != 200 || !strings.Contains(body, "<polyline") || strings.Count(body, "<circle") != 3 {
		t.Errorf("/releases/1.5: %d, chart: %v", code, strings.Contains(body, "<polyline"))
	}
	// Its capacity: half the eligible rating reached, not nine tenths.
	if !strings.Contains(body, "<h2>Capacity</h2>") || !strings.Contains(body, "<strong>85%</strong>") ||
		strings.Count(body, "not yet") != 2 {
		t.Errorf("/releases/1.5 lacks the capacity reached (85%%) and the two shares not reached")
	}
	_, body, _ = world.Get(t, srv.URL+"/api/releases/1.5")
	var relAPI report.Release
	if err := json.Unmarshal([]byte(body), &relAPI); err != nil || relAPI.Capacity == nil || len(relAPI.Capacity.Times) != 3 ||
		relAPI.Capacity.Times[0].Seconds == nil || relAPI.Capacity.Times[1].Seconds != nil {
		t.Errorf("/api/releases/1.5 capacity: %v %s", err, body)
	}

	// The API says what the reporter says.
	code, body, h = world.Get(t, srv.URL+"/api/mirrors?since=7d")
	var api report.Mirrors
	if err := json.Unmarshal([]byte(body), &api); code != 200 || err != nil || h.Get("Content-Type") != "application/json" {
		t.Fatalf("/api/mirrors: %d %v", code, err)
	}
	direct, err := report.New(w.Pool(), nil).Mirrors(context.Background(), report.Window{Since: api.Since, Until: api.Until})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(api.Mirrors)
	b, _ := json.Marshal(direct.Mirrors)
	if !bytes.Equal(a, b) {
		t.Errorf("/api/mirrors differs from the report:\n%s\n%s", a, b)
	}
	for _, c := range []struct {
		path string
		code int
	}{
		{"/api/mirrors/flaky", 200}, {"/api/releases", 200}, {"/api/releases/1.5", 200}, {"/api/history", 200},
		{"/api/mirrors/nosuch", 404}, {"/mirrors/nosuch", 404}, {"/releases/9.9", 404},
		{"/api/mirrors?since=soon", 400}, {"/api/history?days=1000", 400}, {"/nosuch", 404},
	} {
		if code, _, _ := world.Get(t, srv.URL+c.path); code != c.code {
			t.Errorf("%s: %d, want %d", c.path, code, c.code)
		}
	}
	// /api/ lists its endpoints, each of which answers.
	code, body, _ = world.Get(t, srv.URL+"/api/")
	var index struct {
		Endpoints []web.Endpoint `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(body), &index); code != 200 || err != nil || len(index.Endpoints) < 6 {
		t.Fatalf("/api/: %d %v %s", code, err, body)
	}
	for _, e := range index.Endpoints {
		p := strings.NewReplacer("{name}", "flaky").Replace(e.Path)
		if strings.HasPrefix(p, "/api/releases/") {
			p = "/api/releases/1.5"
		}
		if p == "/api/uptake/" {
			p += "?product=Firefox-1.5"
		}
		if p == "/metrics" || p == "/healthz" {
			continue // the daemon's, not the page's
		}
		if code, _, _ := world.Get(t, srv.URL+p); code != 200 {
			t.Errorf("/api/ lists %s, which answers %d", e.Path, code)
		}
	}
	// /api/runs: the fixture's prime, sweep and deep sweep, newest first.
	code, body, _ = world.Get(t, srv.URL+"/api/runs?limit=2")
	var runs struct {
		Runs []report.Run `json:"runs"`
	}
	if err := json.Unmarshal([]byte(body), &runs); code != 200 || err != nil || len(runs.Runs) != 2 ||
		runs.Runs[0].Kind != "deep_sweep" || runs.Runs[1].Kind != "sweep" || runs.Runs[0].Outcome != "completed" || runs.Runs[0].Mirrors != 5 {
		t.Errorf("/api/runs?limit=2: %d %v %s", code, err, body)
	}
	if code, _, _ := world.Get(t, srv.URL+"/api/runs?limit=0"); code != 400 {
		t.Errorf("/api/runs?limit=0: %d, want 400", code)
	}
	_, body, _ = world.Get(t, srv.URL+"/api/history")
	var hist struct {
		Days    int                     `json:"days"`
		Mirrors map[string][]report.Day `json:"mirrors"`
	}
	if err := json.Unmarshal([]byte(body), &hist); err != nil || hist.Days != 14 || len(hist.Mirrors) != 5 {
		t.Errorf("/api/history: %v %s", err, body)
	}
}
