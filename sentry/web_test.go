package sentry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/web"
)

// statusPage serves the status page over a report fixture.
func statusPage(t *testing.T) (*reportWorld, *httptest.Server) {
	t.Helper()
	w := setupReport(t)
	return w, servePage(t, web.Options{Reporter: report.New(w.b.st.Pool(), nil),
		NextSweep: func(after time.Time) time.Time { return after.Add(14*time.Minute + 30*time.Second) }})
}

// servePage serves the status page of o until the test ends.
func servePage(t *testing.T, o web.Options) *httptest.Server {
	t.Helper()
	page, err := web.New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	page.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestStatusPageAndAPI(t *testing.T) {
	w, srv := statusPage(t)

	code, body, h := get(t, srv.URL+"/")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("/: %d %s", code, h.Get("Content-Type"))
	}
	for name := range w.ids {
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

	code, body, _ = get(t, srv.URL+"/mirrors/flaky")
	if code != 200 || !strings.Contains(body, "down after 2 failed sweeps") {
		t.Errorf("/mirrors/flaky: %d\n%s", code, body)
	}
	code, body, _ = get(t, srv.URL+"/mirrors/corrupt")
	if code != 200 || !strings.Contains(body, "checksum_mismatch") || !strings.Contains(body, "win32/de/Firefox Setup 1.5.exe") {
		t.Errorf("/mirrors/corrupt: %d", code)
	}
	code, body, _ = get(t, srv.URL+"/releases/1.5")
	if code != 200 || !strings.Contains(body, "<polyline") || strings.Count(body, "<circle") != 3 {
		t.Errorf("/releases/1.5: %d, chart: %v", code, strings.Contains(body, "<polyline"))
	}

	// The API says what the reporter says.
	code, body, h = get(t, srv.URL+"/api/mirrors?since=7d")
	var api report.Mirrors
	if err := json.Unmarshal([]byte(body), &api); code != 200 || err != nil || h.Get("Content-Type") != "application/json" {
		t.Fatalf("/api/mirrors: %d %v", code, err)
	}
	direct, err := report.New(w.b.st.Pool(), nil).Mirrors(context.Background(), report.Window{Since: api.Since, Until: api.Until})
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
		if code, _, _ := get(t, srv.URL+c.path); code != c.code {
			t.Errorf("%s: %d, want %d", c.path, code, c.code)
		}
	}
	// /api/ lists its endpoints, each of which answers.
	code, body, _ = get(t, srv.URL+"/api/")
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
		if p == "/metrics" || p == "/healthz" {
			continue // the daemon's, not the page's
		}
		if code, _, _ := get(t, srv.URL+p); code != 200 {
			t.Errorf("/api/ lists %s, which answers %d", e.Path, code)
		}
	}
	// /api/runs: the fixture's prime, sweep and deep sweep, newest first.
	code, body, _ = get(t, srv.URL+"/api/runs?limit=2")
	var runs struct {
		Runs []report.Run `json:"runs"`
	}
	if err := json.Unmarshal([]byte(body), &runs); code != 200 || err != nil || len(runs.Runs) != 2 ||
		runs.Runs[0].Kind != "deep_sweep" || runs.Runs[1].Kind != "sweep" || runs.Runs[0].Outcome != "completed" || runs.Runs[0].Mirrors != 5 {
		t.Errorf("/api/runs?limit=2: %d %v %s", code, err, body)
	}
	if code, _, _ := get(t, srv.URL+"/api/runs?limit=0"); code != 400 {
		t.Errorf("/api/runs?limit=0: %d, want 400", code)
	}
	_, body, _ = get(t, srv.URL+"/api/history")
	var hist struct {
		Days    int                     `json:"days"`
		Mirrors map[string][]report.Day `json:"mirrors"`
	}
	if err := json.Unmarshal([]byte(body), &hist); err != nil || hist.Days != 14 || len(hist.Mirrors) != 5 {
		t.Errorf("/api/history: %v %s", err, body)
	}
}

// installed finds a tool of Debian's package pkg under one of its names;
// in CI its absence is a failure, elsewhere the test is skipped.
func installed(t *testing.T, pkg string, names ...string) string {
	t.Helper()
	for _, p := range names {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (.ci/run installs Debian's %s)", names[0], pkg)
	}
	t.Skipf("%s is not installed; apt-get install %s", names[0], pkg)
	return ""
}

// chromium finds Debian's Chromium.
func chromium(t *testing.T) string {
	t.Helper()
	return installed(t, "chromium", "chromium", "chromium-browser", "google-chrome")
}

func TestStatusPageRendersInChromium(t *testing.T) {
	bin := chromium(t)
	_, srv := statusPage(t)

	// Not t.TempDir: Chromium's helpers may still write to the profile as
	// the browser exits, and a failed removal must not fail the test.
	profile, err := os.MkdirTemp("", "sentry-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(profile) })
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(1200, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()

	var mu sync.Mutex
	var problems []string
	chromedp.ListenTarget(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeWarning {
				problems = append(problems, "console "+string(e.Type))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+e.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if e.Entry.Level == log.LevelError {
				problems = append(problems, "log: "+e.Entry.Text+" "+e.Entry.URL)
			}
		}
	})
	// What each page must show as a person reads it: why a mirror is down
	// or degraded, the last sweep and the recent runs; a run of identical
	// failures collapsed with its count; the chart's labelled axes and
	// 10-minute mark.
	shows := map[string][]string{
		"/": {"down after 2 failed sweeps", "1 location off: /firefox/releases/1.5/win32/:lang/Firefox Setup 1.5.exe",
			"Last sweep:", "deep sweep run 3, completed", "next sweep in 14m", "Recent runs", "prime 1.5"},
		"/mirrors/flaky": {"Why: down after 2 failed sweeps", "Recent failures", "×2", "(the mirror)"},
		"/releases/1.5":  {"time since the first prime", "mirrors holding every file", "10 min target", "+10m"},
	}
	for _, page := range []string{"/", "/mirrors/flaky", "/releases/1.5"} {
		var shot []byte
		var title, text string
		if err := chromedp.Run(ctx, log.Enable(), runtime.Enable(),
			chromedp.Navigate(srv.URL+page), chromedp.WaitVisible("h1", chromedp.ByQuery),
			chromedp.Title(&title), chromedp.Text("body", &text, chromedp.ByQuery), chromedp.FullScreenshot(&shot, 100)); err != nil {
			t.Fatalf("%s: %v", page, err)
		}
		if !strings.Contains(title, "sentry") {
			t.Errorf("%s: title %q", page, title)
		}
		text = strings.Join(strings.Fields(text), " ")
		for _, want := range shows[page] {
			if !strings.Contains(text, want) {
				t.Errorf("%s does not show %q:\n%s", page, want, text)
			}
		}
		notBlank(t, page, shot)
	}
	// The chart fills the width of the page (it scales with the window).
	var chartWidth, bodyWidth float64
	if err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/releases/1.5"), chromedp.WaitVisible("svg.chart", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector("svg.chart").getBoundingClientRect().width`, &chartWidth),
		chromedp.Evaluate(`document.querySelector("h1").getBoundingClientRect().width`, &bodyWidth)); err != nil {
		t.Fatal(err)
	}
	if bodyWidth == 0 || chartWidth < 0.95*bodyWidth {
		t.Errorf("the chart is %.0f px wide in a page of %.0f px", chartWidth, bodyWidth)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("the browser reported: %v", problems)
	}
}

// notBlank decodes a PNG screenshot and wants more than a few colours and
// a good share of pixels that are not the background.
func notBlank(t *testing.T, page string, shot []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("%s: screenshot: %v", page, err)
	}
	colours := map[[3]uint32]bool{}
	ink, all := 0, 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			if r>>8 < 200 || g>>8 < 200 || bl>>8 < 200 {
				ink++
			}
			all++
		}
	}
	if len(colours) < 8 || ink*200 < all { // under 0.5% ink: blank
		t.Errorf("%s: the screenshot looks blank: %d colours, %d of %d pixels inked", page, len(colours), ink, all)
	}
	if dir := os.Getenv("SENTRY_SCREENSHOTS"); dir != "" {
		_ = os.WriteFile(dir+"/"+strings.NewReplacer("/", "_").Replace(page)+".png", shot, 0o644)
	}
}
