package hook

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"time"
)

// HealthChecker checks one dependency of the daemon, a database ping say.
// It must return promptly once ctx is done. Its error text is shown to
// whoever can reach /healthz, so it must hold no secret and no URL with
// credentials (pgx errors, for one, can name the host and user: wrap them
// in a fixed text such as "database unreachable").
type HealthChecker func(ctx context.Context) error

// DefaultHealthTimeout is NewHealthHandler's timeout when given 0 or less.
const DefaultHealthTimeout = 5 * time.Second

// maxCheckText caps each check's text in a /healthz answer.
const maxCheckText = 200

// healthResponse is the JSON of a /healthz answer.
type healthResponse struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// NewHealthHandler returns the handler of GET /healthz. Each request runs
// every check concurrently under one context that ends after timeout
// (DefaultHealthTimeout when 0 or less) or when the client goes away, and
// answers
//
//	200 {"status": "ok", "checks": {"database": "ok"}}
//
// when every check returned nil, else
//
//	503 {"status": "unhealthy", "checks": {"database": "<error text>"}}
//
// where a check that had not returned when the context ended, or returned
// an error wrapping context.DeadlineExceeded after it, reads "timeout", and
// a check that panicked reads "check panicked". Error texts are cut at 200
// bytes. With no checks the answer is 200 with empty "checks". HEAD is
// answered like GET, without the body; other methods get 405.
//
// The handler never waits past the context's end for a check: a check that
// ignores ctx keeps running in its goroutine until it returns by itself.
//
// checks is copied; NewHealthHandler panics when a check is nil, a
// programming error.
func NewHealthHandler(checks map[string]HealthChecker, timeout time.Duration) http.Handler {
	for name, c := range checks {
		if c == nil {
			panic(fmt.Sprintf("hook: health check %q is nil", name))
		}
	}
	if timeout <= 0 {
		timeout = DefaultHealthTimeout
	}
	return &healthHandler{checks: maps.Clone(checks), timeout: timeout}
}

type healthHandler struct {
	checks  map[string]HealthChecker
	timeout time.Duration
}

type checkResult struct {
	name string
	err  error
}

var errCheckPanicked = errors.New("check panicked")

func (h *healthHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, response{Error: "method not allowed: use GET"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()

	// Buffered for every check, so that a check finishing after the
	// handler has answered does not block its goroutine.
	results := make(chan checkResult, len(h.checks))
	for name, check := range h.checks {
		go func() {
			err := errCheckPanicked
			defer func() {
				recover() // a check's panic must not take the daemon down
				results <- checkResult{name, err}
			}()
			err = check(ctx)
		}()
	}

	out := healthResponse{Status: "ok", Checks: make(map[string]string, len(h.checks))}
collect:
	for range len(h.checks) {
		select {
		case res := <-results:
			out.Checks[res.name] = checkText(ctx, res.err)
		case <-ctx.Done():
			break collect
		}
	}
	// Results that came in together with the end of the context count.
	for drained := false; !drained; {
		select {
		case res := <-results:
			out.Checks[res.name] = checkText(ctx, res.err)
		default:
			drained = true
		}
	}
	for name := range h.checks {
		if _, ok := out.Checks[name]; !ok {
			out.Checks[name] = checkText(ctx, ctx.Err())
		}
	}
	status := http.StatusOK
	for _, text := range out.Checks {
		if text != "ok" {
			out.Status, status = "unhealthy", http.StatusServiceUnavailable
			break
		}
	}
	writeJSON(w, status, out)
}

// checkText is what /healthz shows for a check that returned err.
func checkText(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.DeadlineExceeded) && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return "canceled"
	}
	text := err.Error()
	if text == "" || text == "ok" {
		text = fmt.Sprintf("error %q", text)
	}
	return truncate(text, maxCheckText)
}
