package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/checks/safetext"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/web"
)

// TestPageShowsHostileNamesAsVisibleText: a mirror's name with an escape,
// a bell, a carriage return and a right-to-left override, and a base URL
// with a password: the page and the API show the name as harmless text
// (the API exactly, its override escaped), never the password; every
// answer says nosniff and denies framing.
func TestPageShowsHostileNamesAsVisibleText(t *testing.T) {
	t.Parallel()
	const name = "evil\x1b]0;pwned\x07\r\u202Egnp.exe"
	w := world.New(t, nil)
	w.Static(t, "good1")
	s := world.Static(t, "evil", w.Rel)
	w.AddMirror(t, name, strings.Replace(s.URL, "http://", "http://user:secretpass@", 1), nil)
	w.Prime(t)
	w.Sweep(t, false)
	srv := world.ServePage(t, web.Options{Reporter: report.New(w.Pool(), nil)})

	for _, path := range []string{"/", "/mirrors/" + url.PathEscape(name), "/releases/1.5", "/api/mirrors", "/api/mirrors/" + url.PathEscape(name), "/api/runs"} {
		code, body, h := world.Get(t, srv.URL+path)
		if code != http.StatusOK {
			t.Errorf("%s: %d", path, code)
			continue
		}
		if strings.Contains(body, "secretpass") {
			t.Errorf("%s shows the base URL's password", path)
		}
		if i := strings.IndexFunc(body, func(r rune) bool { return r != '\n' && safetext.Replaced(r) }); i >= 0 {
			t.Errorf("%s holds %q raw", path, []rune(body[i:])[0])
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: X-Content-Type-Options %q, X-Frame-Options %q", path, h.Get("X-Content-Type-Options"), h.Get("X-Frame-Options"))
		}
		if strings.HasPrefix(path, "/api/") {
			continue
		}
		if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q does not deny framing", path, h.Get("Content-Security-Policy"))
		}
		if path != "/releases/1.5" && !strings.Contains(body, "evil␛]0;pwned␇␍[U+202E]gnp.exe") {
			t.Errorf("%s does not show the name as visible text", path)
		}
	}
}

// TestPageAnswersBusyAndNeverAStackTrace: past MaxInFlight requests at
// once the page answers 503 at once (a flood holds neither goroutines nor
// connections); a panic is a short 500, logged, without a stack trace.
func TestPageAnswersBusyAndNeverAStackTrace(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	w.Static(t, "good1")
	srv := world.ServePage(t, web.Options{Reporter: report.New(w.Pool(), nil), MaxInFlight: 1})

	// A request held by a lock on the mirrors takes the one place.
	ctx := context.Background()
	conn, err := w.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE mirror_mirrors IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	held := make(chan int, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/api/mirrors")
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	deadline := time.Now().Add(30 * time.Second)
	for waiting := 0; waiting == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the request never waited on the lock")
		}
		if err := w.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	code, body, h := world.Get(t, srv.URL+"/")
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Errorf("a request past MaxInFlight: %d (Retry-After %q) %s", code, h.Get("Retry-After"), body)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	conn.Release()
	if code := <-held; code != http.StatusOK {
		t.Errorf("the held request: %d", code)
	}

	// A reporter without a database panics in every handler.
	broken := world.ServePage(t, web.Options{Reporter: report.New(nil, nil), Logger: w.Deps.Logger})
	code, body, _ = world.Get(t, broken.URL+"/api/mirrors")
	if code != http.StatusInternalServerError || strings.Contains(body, "goroutine") || strings.Contains(body, ".go:") || len(body) > 100 {
		t.Errorf("a panic answered %d:\n%s", code, body)
	}
	if !strings.Contains(w.Logs.String(), "status page: panic") {
		t.Error("the panic was not logged")
	}
}
