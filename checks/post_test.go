package checks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

const postTestUA = "sentry/post-test (+https://example.org/contact)"

// postTestClient is a fast client for the Post tests (tiny retry waits),
// with their own User-Agent.
func postTestClient(t *testing.T) *Client {
	t.Helper()
	c, tr := newTestClient(t, func(o *ClientOptions) { o.UserAgent = postTestUA })
	t.Cleanup(func() { tr.assertClosed(t) })
	return c
}

// postSeen records what a Post test server received.
type postSeen struct {
	mu      sync.Mutex
	methods []string
	bodies  [][]byte
	headers []http.Header
}

func (s *postSeen) record(r *http.Request) {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.methods = append(s.methods, r.Method)
	s.bodies = append(s.bodies, b)
	s.headers = append(s.headers, r.Header.Clone())
}

func TestPost(t *testing.T) {
	body := []byte(`{"release":"1.5","files":["a b.exe"]}`)
	big := bytes.Repeat([]byte("x"), postDrainLimit+1000)

	tests := []struct {
		name     string
		handler  func(seen *postSeen, n *atomic.Int32) http.HandlerFunc
		path     string // appended to the server URL
		kind     Kind
		status   int
		attempts int
		bytes    int64 // -1: not checked
		requests int   // requests the server must have received
		detail   string
		// redirected: the requests recorded followed a redirect, and so
		// carry none of the caller's headers (the signature stays with
		// the URL asked).
		redirected bool
	}{
		{
			name: "200 with a small body",
			handler: func(s *postSeen, n *atomic.Int32) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { s.record(r); io.WriteString(w, "queued") }
			},
			kind: KindOK, status: 200, attempts: 1, bytes: 6, requests: 1,
		},
		{
			name: "204 no content",
			handler: func(s *postSeen, n *atomic.Int32) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { s.record(r); w.WriteHeader(http.StatusNoContent) }
			},
			kind: KindOK, status: 204, attempts: 1, bytes: 0, requests: 1,
		},
		{
			name: "202 with a huge body is drained at most 64 KiB",
			handler: func(s *postSeen, n *atomic.Int32) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					s.record(r)
					w.WriteHeader(http.StatusAccepted)
					w.Write(big)
				}
			},
			kind: KindOK, status: 202, attempts: 1, bytes: postDrainLimit, requests: 1,
		},
		{
			name: "404 is not_found",
			handler: func(s *postSeen, n *atomic.Int32) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { s.record(r); http.NotFound(w, r) }
			},
			kind: KindNotFound, status: 404, attempts: 1, bytes: -1, requests: 1, detail: "HTTP 404",
		},
		{
			name: "401 is forbidden (a wrong signature)",
			handler: func(s *postSeen, n *atomic.Int32) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					s.record(r)
					http.Error(w, "bad signature", http.StatusUnauthorized)
				}
			},
			kind: KindForbidden, status: 401, attempts: 1, bytes: -1, requests: 1,
		},
		{
			name: "400 is http_status, not retried",
			handler: func(s *postSeen, n *atomic.Int32) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					s.record(r)
					http.Error(w, "bad", http.StatusBadRequest)
				}
			},
			kind: KindHTTPStatus, status: 400, attempts: 1, bytes: -1, requests: 1,
		},
		{
			name: "503 then 200: retried with the same body",
			handler: func(s *postSeen, n *atomic.Int32) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					s.record(r)
					if n.Add(1) == 1 {
						http.Error(w, "busy", http.StatusServiceUnavailable)
						return
					}
					w.WriteHeader(http.StatusOK)
				}
			},
			kind: KindOK, status: 200, attempts: 2, bytes: 0, requests: 2,
		},
		{
			name: "503 always: http_status after 3 attempts",
			handler: func(s *postSeen, n *atomic.Int32) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					s.record(r)
					http.Error(w, "busy", http.StatusServiceUnavailable)
				}
			},
			kind: KindHTTPStatus, status: 503, attempts: 3, bytes: -1, requests: 3, detail: "after 3 attempts",
		},
		{
			name: "307 to the same origin resends the body, not the caller's headers",
			path: "/old?token=secret",
			handler: func(s *postSeen, n *atomic.Int32) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/old" {
						http.Redirect(w, r, "/new?token=secret", http.StatusTemporaryRedirect)
						return
					}
					s.record(r)
					w.WriteHeader(http.StatusOK)
				}
			},
			kind: KindOK, status: 200, attempts: 1, bytes: 0, requests: 1, redirected: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var seen postSeen
			var n atomic.Int32
			srv := httptest.NewServer(tc.handler(&seen, &n))
			t.Cleanup(srv.Close)
			c := postTestClient(t)
			h := http.Header{}
			h.Set("Content-Type", "application/json")
			h.Set("X-Sentry-Signature", "sha256=abc")
			h.Set("User-Agent", "spoofed")

			res := Post(context.Background(), c, srv.URL+tc.path, body, h)

			if res.Kind != tc.kind || res.Status != tc.status || res.Attempts != tc.attempts {
				t.Fatalf("got kind %s status %d attempts %d (%s), want %s %d %d",
					res.Kind, res.Status, res.Attempts, res.Detail, tc.kind, tc.status, tc.attempts)
			}
			if tc.bytes >= 0 && res.Bytes != tc.bytes {
				t.Errorf("Bytes = %d, want %d", res.Bytes, tc.bytes)
			}
			if tc.kind.Failed() == (res.Err == nil) {
				t.Errorf("Err = %v for kind %s", res.Err, res.Kind)
			}
			if !strings.Contains(res.Detail, tc.detail) {
				t.Errorf("Detail %q does not contain %q", res.Detail, tc.detail)
			}
			if strings.Contains(res.FinalURL, "secret") || strings.Contains(res.Detail, "secret") {
				t.Errorf("the URL's token leaked: FinalURL %q Detail %q", res.FinalURL, res.Detail)
			}
			seen.mu.Lock()
			defer seen.mu.Unlock()
			if len(seen.methods) != tc.requests {
				t.Fatalf("server saw %d requests, want %d", len(seen.methods), tc.requests)
			}
			for i := range seen.methods {
				if seen.methods[i] != http.MethodPost {
					t.Errorf("request %d: method %s", i, seen.methods[i])
				}
				if !bytes.Equal(seen.bodies[i], body) {
					t.Errorf("request %d: body %q, want %q", i, seen.bodies[i], body)
				}
				hd := seen.headers[i]
				if got := hd.Get("User-Agent"); got != postTestUA {
					t.Errorf("request %d: User-Agent %q", i, got)
				}
				switch {
				case tc.redirected && (hd.Get("Content-Type") != "" || hd.Get("X-Sentry-Signature") != ""):
					t.Errorf("request %d, redirected: the caller's headers went along: %v", i, hd)
				case !tc.redirected && (hd.Get("Content-Type") != "application/json" || hd.Get("X-Sentry-Signature") != "sha256=abc"):
					t.Errorf("request %d: headers %v", i, hd)
				}
			}
		})
	}
}

func TestPostRefuses(t *testing.T) {
	c := postTestClient(t)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		ctx     context.Context
		c       *Client
		url     string
		body    []byte
		wantErr error
	}{
		{"nil client", context.Background(), nil, srv.URL, nil, ErrInvalidTarget},
		{"not http", context.Background(), c, "ftp://example.org/x", nil, ErrInvalidTarget},
		{"no host", context.Background(), c, "http:///x", nil, ErrInvalidTarget},
		{"body too large", context.Background(), c, srv.URL, make([]byte, MaxPostBody+1), ErrInvalidTarget},
		{"cancelled context", cancelled, c, srv.URL, []byte("{}"), context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := Post(tc.ctx, tc.c, tc.url, tc.body, nil)
			if res.Kind != KindInternal || !errors.Is(res.Err, tc.wantErr) {
				t.Fatalf("got %s (%v), want internal wrapping %v", res.Kind, res.Err, tc.wantErr)
			}
		})
	}
	// A method that is not a token is sentry's own mistake, refused
	// before any request.
	for _, m := range []string{"", "PUR GE", "PURGE\r\nX-Evil: 1", "PURGE(x)"} {
		if res := Purge(context.Background(), c, m, srv.URL); res.Kind != KindInternal || !errors.Is(res.Err, ErrInvalidTarget) {
			t.Errorf("method %q: got %s (%v), want internal wrapping ErrInvalidTarget", m, res.Kind, res.Err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("server saw %d requests, want none", n)
	}
}

// TestPostCancelledInFlight: a parent cancellation during the request is
// KindInternal wrapping context.Canceled, never blamed on the mirror.
func TestPostCancelledInFlight(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c := postTestClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-arrived
		cancel()
	}()
	res := Post(ctx, c, srv.URL, []byte("{}"), nil)
	if res.Kind != KindInternal || !errors.Is(res.Err, context.Canceled) {
		t.Fatalf("got %s (%v), want internal wrapping context.Canceled", res.Kind, res.Err)
	}
}
