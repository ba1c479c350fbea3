package web_test

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
)

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
	t.Parallel()
	bin := chromium(t)
	_, srv := world.StatusPage(t)

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
