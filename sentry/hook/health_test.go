package hook_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/hook"
)

type healthAnswer struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func getHealth(t *testing.T, h http.Handler, method string) (*httptest.ResponseRecorder, healthAnswer) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, "/healthz", nil))
	var a healthAnswer
	if method != http.MethodHead {
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
			t.Fatalf("response %q: %v", w.Body, err)
		}
	}
	return w, a
}

func ok(context.Context) error { return nil }

// waitForCtx blocks until ctx is done, like a ping of a database that does
// not answer.
func waitForCtx(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestHealthHandler(t *testing.T) {
	long := strings.Repeat("é", 300) // 600 bytes of 2-byte runes
	tests := []struct {
		name    string
		checks  map[string]hook.HealthChecker
		status  int
		overall string
		want    map[string]string
	}{
		{
			name:   "all good",
			checks: map[string]hook.HealthChecker{"database": ok, "daemon": ok},
			status: http.StatusOK, overall: "ok",
			want: map[string]string{"database": "ok", "daemon": "ok"},
		},
		{
			name:   "no checks",
			checks: nil,
			status: http.StatusOK, overall: "ok",
			want: map[string]string{},
		},
		{
			name: "one failing",
			checks: map[string]hook.HealthChecker{
				"database": func(context.Context) error { return errors.New("database unreachable") },
				"daemon":   ok,
			},
			status: http.StatusServiceUnavailable, overall: "unhealthy",
			want: map[string]string{"database": "database unreachable", "daemon": "ok"},
		},
		{
			name:   "blocks past the timeout",
			checks: map[string]hook.HealthChecker{"database": waitForCtx, "daemon": ok},
			status: http.StatusServiceUnavailable, overall: "unhealthy",
			want: map[string]string{"database": "timeout", "daemon": "ok"},
		},
		{
			name:   "returns a wrapped deadline error",
			checks: map[string]hook.HealthChecker{"database": func(ctx context.Context) error { <-ctx.Done(); return errors.Join(errors.New("ping"), ctx.Err()) }},
			status: http.StatusServiceUnavailable, overall: "unhealthy",
			want: map[string]string{"database": "timeout"},
		},
		{
			name:   "panics",
			checks: map[string]hook.HealthChecker{"database": func(context.Context) error { panic("boom") }, "daemon": ok},
			status: http.StatusServiceUnavailable, overall: "unhealthy",
			want: map[string]string{"database": "check panicked", "daemon": "ok"},
		},
		{
			name:   "empty error text",
			checks: map[string]hook.HealthChecker{"database": func(context.Context) error { return errors.New("") }},
			status: http.StatusServiceUnavailable, overall: "unhealthy",
			want: map[string]string{"database": `error ""`},
		},
		{
			name:   "long error text is cut at 200 bytes on a rune boundary",
			checks: map[string]hook.HealthChecker{"database": func(context.Context) error { return errors.New(long) }},
			status: http.StatusServiceUnavailable, overall: "unhealthy",
			want: map[string]string{"database": strings.Repeat("é", 98) + "…"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := hook.NewHealthHandler(tc.checks, 20*time.Millisecond)
			w, a := getHealth(t, h, http.MethodGet)
			if w.Code != tc.status || a.Status != tc.overall {
				t.Errorf("status %d %q, want %d %q", w.Code, a.Status, tc.status, tc.overall)
			}
			if len(a.Checks) != len(tc.want) || a.Checks == nil {
				t.Errorf("checks %v, want %v", a.Checks, tc.want)
			}
			for name, want := range tc.want {
				if a.Checks[name] != want {
					t.Errorf("checks[%q] = %q, want %q", name, a.Checks[name], want)
				}
				if len(a.Checks[name]) > 200 {
					t.Errorf("checks[%q] is %d bytes, want at most 200", name, len(a.Checks[name]))
				}
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

// A check that ignores its context does not hold the answer up; it keeps
// running until it returns by itself.
func TestHealthHandlerCheckIgnoringContext(t *testing.T) {
	release := make(chan struct{})
	returned := make(chan struct{})
	h := hook.NewHealthHandler(map[string]hook.HealthChecker{
		"stuck": func(context.Context) error {
			defer close(returned)
			<-release
			return nil
		},
		"daemon": ok,
	}, 10*time.Millisecond)
	w, a := getHealth(t, h, http.MethodGet)
	if w.Code != http.StatusServiceUnavailable || a.Checks["stuck"] != "timeout" || a.Checks["daemon"] != "ok" {
		t.Errorf("status %d, checks %v; want 503 stuck=timeout daemon=ok", w.Code, a.Checks)
	}
	close(release)
	<-returned // the check's goroutine is not blocked on sending its late result
}

// A check that waits on its context has returned by the time its goroutine
// could be leaked: the handler cancels the context before it returns.
func TestHealthHandlerCancelsChecks(t *testing.T) {
	returned := make(chan error, 1)
	h := hook.NewHealthHandler(map[string]hook.HealthChecker{
		"database": func(ctx context.Context) error {
			err := waitForCtx(ctx)
			returned <- err
			return err
		},
	}, 10*time.Millisecond)
	if w, _ := getHealth(t, h, http.MethodGet); w.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", w.Code)
	}
	if err := <-returned; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the check saw %v, want a deadline", err)
	}
}

func TestHealthHandlerMethods(t *testing.T) {
	h := hook.NewHealthHandler(map[string]hook.HealthChecker{"database": ok}, 0)
	if w, _ := getHealth(t, h, http.MethodHead); w.Code != http.StatusOK {
		t.Errorf("HEAD: status %d, want 200", w.Code)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/healthz", nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: status %d, Allow %q; want 405 \"GET, HEAD\"", w.Code, w.Header().Get("Allow"))
	}
}

// The handler keeps its own copy of the checks.
func TestHealthHandlerCopiesChecks(t *testing.T) {
	checks := map[string]hook.HealthChecker{"database": ok}
	h := hook.NewHealthHandler(checks, time.Second)
	checks["broken"] = func(context.Context) error { return errors.New("broken") }
	if w, a := getHealth(t, h, http.MethodGet); w.Code != http.StatusOK || len(a.Checks) != 1 {
		t.Errorf("status %d, checks %v; want 200 with database only", w.Code, a.Checks)
	}
}

func TestHealthHandlerNilCheckPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), `"database"`) {
			t.Errorf("recovered %v, want a panic naming the check", r)
		}
	}()
	hook.NewHealthHandler(map[string]hook.HealthChecker{"database": nil}, time.Second)
}
