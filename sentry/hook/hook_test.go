package hook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/hook"
	"github.com/mirrorsentry/sentry/sentry/release"
)

const (
	testSecret = "hook-secret-0123456789abcdef"
	goodBody   = `{"release":"1.5"}`
	window     = 5 * time.Minute
	maxBody    = 1024
)

// t0 is the handler's clock in most tests.
var t0 = time.Unix(1_732_527_000, 0)

// starter is a Starter that records its calls.
type starter struct {
	mu    sync.Mutex
	calls []string
	runID int64
	err   error
}

func (s *starter) start(_ context.Context, release string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, release)
	return s.runID, s.err
}

func (s *starter) called() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// result is what a starter answers.
type result struct {
	runID int64
	err   error
}

// syncBuffer is a bytes.Buffer safe for a logger used by a real server.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// clock is an adjustable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// newHandler returns a release hook with testSecret, a clock at t0, the
// real release name validation and logs written to logs.
func newHandler(t testing.TB, st *starter, logs *syncBuffer, mod func(*hook.Options)) http.Handler {
	t.Helper()
	o := hook.Options{
		Secret:       []byte(testSecret),
		ReplayWindow: window,
		Start:        st.start,
		Validate:     release.ValidateName,
		Now:          func() time.Time { return t0 },
		Logger:       slog.New(slog.NewTextHandler(logs, nil)),
		MaxBody:      maxBody,
	}
	if mod != nil {
		mod(&o)
	}
	h, err := hook.NewReleaseHandler(o)
	if err != nil {
		t.Fatalf("NewReleaseHandler: %v", err)
	}
	return h
}

// signedRequest is a POST of body at ts, signed with secret.
func signedRequest(body string, ts time.Time, secret string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/release", strings.NewReader(body))
	tsText := strconv.FormatInt(ts.Unix(), 10)
	r.Header.Set(hook.HeaderTimestamp, tsText)
	r.Header.Set(hook.HeaderSignature, hook.Sign([]byte(secret), tsText, []byte(body)))
	return r
}

// answer is a decoded response.
type answer struct {
	Error   string `json:"error"`
	RunID   *int64 `json:"run_id"`
	Release string `json:"release"`
}

func serve(t *testing.T, h http.Handler, r *http.Request) (*httptest.ResponseRecorder, answer) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var a answer
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("response %q is not the expected JSON: %v", w.Body.String(), err)
	}
	return w, a
}

func TestReleaseHandler(t *testing.T) {
	stale := t0.Add(-window - time.Second)
	future := t0.Add(window + time.Second)
	setHeader := func(name, value string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set(name, value) }
	}
	padded := goodBody + strings.Repeat(" ", maxBody-len(goodBody))
	// A signature that is well-formed but the valid one for other input.
	sigFor := func(ts time.Time, body string) string {
		return hook.Sign([]byte(testSecret), strconv.FormatInt(ts.Unix(), 10), []byte(body))
	}

	tests := []struct {
		name    string
		req     func() *http.Request
		starter result
		status  int
		errText string // substring of the answer's "error"; "" means none
		runID   int64  // expected "run_id"; 0 means absent
		release string // expected "release" in the answer
		started []string
		allow   string
	}{
		{
			name:    "good request",
			req:     func() *http.Request { return signedRequest(goodBody, t0, testSecret) },
			starter: result{runID: 42},
			status:  http.StatusAccepted, runID: 42, release: "1.5", started: []string{"1.5"},
		},
		{
			name: "upper-case hex signature",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				r.Header.Set(hook.HeaderSignature, "sha256="+strings.ToUpper(strings.TrimPrefix(r.Header.Get(hook.HeaderSignature), "sha256=")))
				return r
			},
			starter: result{runID: 1},
			status:  http.StatusAccepted, runID: 1, release: "1.5", started: []string{"1.5"},
		},
		{
			name:    "timestamp exactly at the old edge of the window",
			req:     func() *http.Request { return signedRequest(goodBody, t0.Add(-window), testSecret) },
			starter: result{runID: 2},
			status:  http.StatusAccepted, runID: 2, release: "1.5", started: []string{"1.5"},
		},
		{
			name:    "timestamp exactly at the future edge of the window",
			req:     func() *http.Request { return signedRequest(goodBody, t0.Add(window), testSecret) },
			starter: result{runID: 3},
			status:  http.StatusAccepted, runID: 3, release: "1.5", started: []string{"1.5"},
		},
		{
			name:    "body of exactly MaxBody bytes",
			req:     func() *http.Request { return signedRequest(padded, t0, testSecret) },
			starter: result{runID: 4},
			status:  http.StatusAccepted, runID: 4, release: "1.5", started: []string{"1.5"},
		},
		{
			name:    "trailing white space",
			req:     func() *http.Request { return signedRequest(" \n"+goodBody+"\r\n\t ", t0, testSecret) },
			starter: result{runID: 5},
			status:  http.StatusAccepted, runID: 5, release: "1.5", started: []string{"1.5"},
		},

		// Authentication.
		{
			name:   "signed with another secret",
			req:    func() *http.Request { return signedRequest(goodBody, t0, "another-secret-0123456789") },
			status: http.StatusUnauthorized, errText: "unauthorized: bad signature",
		},
		{
			name: "signature over a different body",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				r.Header.Set(hook.HeaderSignature, sigFor(t0, `{"release":"1.6"}`))
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: bad signature",
		},
		{
			name: "signature over a different timestamp",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				r.Header.Set(hook.HeaderSignature, sigFor(t0.Add(-time.Second), goodBody))
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: bad signature",
		},
		{
			name: "timestamp with a leading zero (another signed text)",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				r.Header.Set(hook.HeaderTimestamp, "0"+r.Header.Get(hook.HeaderTimestamp))
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: bad signature",
		},
		{
			name: "missing timestamp",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				r.Header.Del(hook.HeaderTimestamp)
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: missing timestamp",
		},
		{
			name: "missing signature",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				r.Header.Del(hook.HeaderSignature)
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: missing signature",
		},
		{
			name: "no headers at all",
			req: func() *http.Request {
				return httptest.NewRequest(http.MethodPost, "/hooks/release", strings.NewReader(goodBody))
			},
			status: http.StatusUnauthorized, errText: "unauthorized: missing timestamp",
		},
		{
			name: "timestamp not a number",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				setHeader(hook.HeaderTimestamp, "yesterday")(r)
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: malformed timestamp",
		},
		{
			name: "negative timestamp",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				setHeader(hook.HeaderTimestamp, "-1732527000")(r)
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: malformed timestamp",
		},
		{
			name: "timestamp with a plus sign",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				setHeader(hook.HeaderTimestamp, "+1732527000")(r)
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: malformed timestamp",
		},
		{
			name: "timestamp in milliseconds is far in the future",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				setHeader(hook.HeaderTimestamp, "1732527000000")(r)
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: timestamp in the future",
		},
		{
			name: "timestamp of 19 digits",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				setHeader(hook.HeaderTimestamp, "1000000000000000000")(r)
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: malformed timestamp",
		},
		{
			name: "two timestamp headers",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				r.Header.Add(hook.HeaderTimestamp, r.Header.Get(hook.HeaderTimestamp))
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: malformed timestamp",
		},
		{
			name:   "timestamp too old, validly signed",
			req:    func() *http.Request { return signedRequest(goodBody, stale, testSecret) },
			status: http.StatusUnauthorized, errText: "unauthorized: stale timestamp",
		},
		{
			name:   "timestamp too far in the future, validly signed",
			req:    func() *http.Request { return signedRequest(goodBody, future, testSecret) },
			status: http.StatusUnauthorized, errText: "unauthorized: timestamp in the future",
		},
		{
			name: "signature without its prefix",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				r.Header.Set(hook.HeaderSignature, strings.TrimPrefix(r.Header.Get(hook.HeaderSignature), "sha256="))
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: malformed signature",
		},
		{
			name: "signature with another algorithm",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				r.Header.Set(hook.HeaderSignature, strings.Replace(r.Header.Get(hook.HeaderSignature), "sha256=", "sha512=", 1))
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: malformed signature",
		},
		{
			name: "signature cut short",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				s := r.Header.Get(hook.HeaderSignature)
				r.Header.Set(hook.HeaderSignature, s[:len(s)-2])
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: malformed signature",
		},
		{
			name: "signature not hex",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				setHeader(hook.HeaderSignature, "sha256="+strings.Repeat("zz", 32))(r)
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: malformed signature",
		},
		{
			name: "two signature headers, the good one second",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				good := r.Header.Get(hook.HeaderSignature)
				r.Header.Set(hook.HeaderSignature, "sha256="+strings.Repeat("00", 32))
				r.Header.Add(hook.HeaderSignature, good)
				return r
			},
			status: http.StatusUnauthorized, errText: "unauthorized: malformed signature",
		},

		// Method and size.
		{
			name: "GET",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				r.Method = http.MethodGet
				return r
			},
			status: http.StatusMethodNotAllowed, errText: "method not allowed", allow: "POST",
		},
		{
			name: "PUT",
			req: func() *http.Request {
				r := signedRequest(goodBody, t0, testSecret)
				r.Method = http.MethodPut
				return r
			},
			status: http.StatusMethodNotAllowed, errText: "method not allowed", allow: "POST",
		},
		{
			name:   "body one byte over MaxBody, validly signed",
			req:    func() *http.Request { return signedRequest(padded+" ", t0, testSecret) },
			status: http.StatusRequestEntityTooLarge, errText: "larger than 1024 bytes",
		},

		// The body, once authenticated.
		{
			name:   "not JSON",
			req:    func() *http.Request { return signedRequest(`{"release":`, t0, testSecret) },
			status: http.StatusBadRequest, errText: "bad request body: not JSON",
		},
		{
			name:   "empty body",
			req:    func() *http.Request { return signedRequest(``, t0, testSecret) },
			status: http.StatusBadRequest, errText: "empty body",
		},
		{
			name:   "array",
			req:    func() *http.Request { return signedRequest(`["1.5"]`, t0, testSecret) },
			status: http.StatusBadRequest, errText: "want a JSON object",
		},
		{
			name:   "bare string",
			req:    func() *http.Request { return signedRequest(`"1.5"`, t0, testSecret) },
			status: http.StatusBadRequest, errText: "want a JSON object",
		},
		{
			name:   "empty object",
			req:    func() *http.Request { return signedRequest(`{}`, t0, testSecret) },
			status: http.StatusBadRequest, errText: `missing field "release"`,
		},
		{
			name:   "unknown field",
			req:    func() *http.Request { return signedRequest(`{"release":"1.5","force":true}`, t0, testSecret) },
			status: http.StatusBadRequest, errText: `unknown field "force"`,
		},
		{
			name:   "field name in another case",
			req:    func() *http.Request { return signedRequest(`{"Release":"1.5"}`, t0, testSecret) },
			status: http.StatusBadRequest, errText: `unknown field "Release"`,
		},
		{
			name:   "release given twice",
			req:    func() *http.Request { return signedRequest(`{"release":"1.5","release":"1.6"}`, t0, testSecret) },
			status: http.StatusBadRequest, errText: "given twice",
		},
		{
			name:   "release null",
			req:    func() *http.Request { return signedRequest(`{"release":null}`, t0, testSecret) },
			status: http.StatusBadRequest, errText: "must be a string",
		},
		{
			name:   "release a number",
			req:    func() *http.Request { return signedRequest(`{"release":1.5}`, t0, testSecret) },
			status: http.StatusBadRequest, errText: "must be a string",
		},
		{
			name:   "trailing object",
			req:    func() *http.Request { return signedRequest(goodBody+`{}`, t0, testSecret) },
			status: http.StatusBadRequest, errText: "trailing data",
		},
		{
			name:   "trailing garbage",
			req:    func() *http.Request { return signedRequest(goodBody+`x`, t0, testSecret) },
			status: http.StatusBadRequest, errText: "trailing data",
		},
		{
			name:   "unclosed object",
			req:    func() *http.Request { return signedRequest(`{"release":"1.5"`, t0, testSecret) },
			status: http.StatusBadRequest, errText: "not JSON",
		},
		{
			name:   "release stepping out of the directory",
			req:    func() *http.Request { return signedRequest(`{"release":"../x"}`, t0, testSecret) },
			status: http.StatusBadRequest, errText: `invalid release name "../x"`,
		},
		{
			name:   "empty release",
			req:    func() *http.Request { return signedRequest(`{"release":""}`, t0, testSecret) },
			status: http.StatusBadRequest, errText: "invalid release name",
		},

		// Starting.
		{
			name:    "busy with a known run",
			req:     func() *http.Request { return signedRequest(goodBody, t0, testSecret) },
			starter: result{err: hook.BusyError{RunID: 7}},
			status:  http.StatusConflict, errText: "already running", runID: 7, release: "1.5", started: []string{"1.5"},
		},
		{
			name:    "busy, run unknown",
			req:     func() *http.Request { return signedRequest(goodBody, t0, testSecret) },
			starter: result{err: fmt.Errorf("prime 1.5: %w", hook.ErrBusy)},
			status:  http.StatusConflict, errText: "already running", release: "1.5", started: []string{"1.5"},
		},
		{
			name:    "starter fails",
			req:     func() *http.Request { return signedRequest(goodBody, t0, testSecret) },
			starter: result{err: errors.New("insert run: connection refused to db.internal")},
			status:  http.StatusServiceUnavailable, errText: "could not start", started: []string{"1.5"},
		},
	}

	logs := &syncBuffer{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &starter{runID: tc.starter.runID, err: tc.starter.err}
			h := newHandler(t, st, logs, nil)
			r := tc.req()
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			// The signature the handler computes: never to be echoed.
			expectedSig := hook.Sign([]byte(testSecret), r.Header.Get(hook.HeaderTimestamp), body)
			before := strings.Count(logs.String(), "\n")

			w, a := serve(t, h, r)

			if w.Code != tc.status {
				t.Errorf("status = %d, want %d (body %s)", w.Code, tc.status, w.Body)
			}
			if tc.errText == "" && a.Error != "" || !strings.Contains(a.Error, tc.errText) {
				t.Errorf("error = %q, want it to contain %q", a.Error, tc.errText)
			}
			if tc.status == http.StatusUnauthorized && !strings.HasPrefix(a.Error, "unauthorized: ") {
				t.Errorf("401 error = %q, want it to start with \"unauthorized: \"", a.Error)
			}
			switch {
			case tc.runID == 0 && a.RunID != nil:
				t.Errorf("run_id = %d, want none", *a.RunID)
			case tc.runID != 0 && (a.RunID == nil || *a.RunID != tc.runID):
				t.Errorf("run_id = %v, want %d", a.RunID, tc.runID)
			}
			if a.Release != tc.release {
				t.Errorf("release = %q, want %q", a.Release, tc.release)
			}
			if got := w.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
			if got := st.called(); fmt.Sprint(got) != fmt.Sprint(tc.started) {
				t.Errorf("Starter called with %q, want %q", got, tc.started)
			}
			for _, leak := range []string{testSecret, expectedSig[len("sha256="):], "db.internal"} {
				if strings.Contains(strings.ToLower(w.Body.String()), strings.ToLower(leak)) {
					t.Errorf("response %s contains %q", w.Body, leak)
				}
			}
			if got := strings.Count(logs.String(), "\n") - before; got != 1 {
				t.Errorf("%d log lines for one request, want 1", got)
			}
		})
	}

	// The logs: one info line per request with its outcome and remote
	// address, never the secret nor a signature.
	out := logs.String()
	for _, leak := range []string{testSecret, "sha256=", strings.ToLower(sigFor(t0, goodBody)[7:])} {
		if strings.Contains(strings.ToLower(out), strings.ToLower(leak)) {
			t.Errorf("logs contain %q:\n%s", leak, out)
		}
	}
	for _, want := range []string{"level=INFO", "remote=192.0.2.1:1234", `outcome="unauthorized: bad signature"`, "outcome=started", "status=202", "run_id=42", "release=1.5", `outcome="could not start"`, "db.internal"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != len(tests) {
		t.Errorf("%d log lines for %d requests", n, len(tests))
	}
}

// A long release name is refused without being echoed in full.
func TestReleaseHandlerLongNameNotEchoed(t *testing.T) {
	logs := &syncBuffer{}
	st := &starter{}
	h := newHandler(t, st, logs, func(o *hook.Options) { o.MaxBody = 0 }) // the 64 KiB default
	long := strings.Repeat("x", 60_000)
	w, a := serve(t, h, signedRequest(`{"release":"`+long+`"}`, t0, testSecret))
	if w.Code != http.StatusBadRequest || !strings.Contains(a.Error, "invalid release name") {
		t.Errorf("status %d, error %q; want 400 invalid release name", w.Code, a.Error)
	}
	if w.Body.Len() > 300 || len(logs.String()) > 1000 {
		t.Errorf("the long name was echoed: response %d bytes, log %d bytes", w.Body.Len(), len(logs.String()))
	}
	if len(st.called()) != 0 {
		t.Error("Starter called for an invalid name")
	}
}

func TestReleaseHandlerReplay(t *testing.T) {
	st := &starter{runID: 9}
	clk := &clock{t: t0}
	h := newHandler(t, st, &syncBuffer{}, func(o *hook.Options) { o.Now = clk.now })

	first := signedRequest(goodBody, t0, testSecret)
	sig := first.Header.Get(hook.HeaderSignature)
	if w, _ := serve(t, h, first); w.Code != http.StatusAccepted {
		t.Fatalf("first request: status %d, want 202", w.Code)
	}

	upper := "sha256=" + strings.ToUpper(sig[len("sha256="):])
	clk.set(t0.Add(window)) // the last second the timestamp is in the window
	for _, s := range []string{sig, upper} {
		r := signedRequest(goodBody, t0, testSecret)
		r.Header.Set(hook.HeaderSignature, s)
		w, a := serve(t, h, r)
		if w.Code != http.StatusUnauthorized || a.Error != "unauthorized: replayed" {
			t.Errorf("replay with %s…: status %d, error %q; want 401 unauthorized: replayed", s[:12], w.Code, a.Error)
		}
	}
	// Once the timestamp has left the window, the window check refuses it.
	clk.set(t0.Add(window + time.Second))
	w, a := serve(t, h, signedRequest(goodBody, t0, testSecret))
	if w.Code != http.StatusUnauthorized || a.Error != "unauthorized: stale timestamp" {
		t.Errorf("late replay: status %d, error %q; want 401 stale timestamp", w.Code, a.Error)
	}
	// A fresh signature for the same release is a new request.
	if w, _ := serve(t, h, signedRequest(goodBody, clk.now(), testSecret)); w.Code != http.StatusAccepted {
		t.Errorf("freshly signed request: status %d, want 202", w.Code)
	}
	if got := st.called(); len(got) != 2 {
		t.Errorf("Starter called %d times (%q), want 2", len(got), got)
	}
}

// A refused body still consumes the signature: the same bytes cannot pass
// later.
func TestReleaseHandlerReplayOfRefusedBody(t *testing.T) {
	st := &starter{}
	h := newHandler(t, st, &syncBuffer{}, nil)
	for i, want := range []int{http.StatusBadRequest, http.StatusUnauthorized} {
		if w, _ := serve(t, h, signedRequest(`{"release":"../x"}`, t0, testSecret)); w.Code != want {
			t.Errorf("attempt %d: status %d, want %d", i+1, w.Code, want)
		}
	}
	if len(st.called()) != 0 {
		t.Error("Starter called")
	}
}

// Concurrent copies of one signed request: exactly one is accepted.
func TestReleaseHandlerConcurrentReplay(t *testing.T) {
	st := &starter{runID: 1}
	h := newHandler(t, st, &syncBuffer{}, nil)
	const n = 32
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, signedRequest(goodBody, t0, testSecret))
			codes <- w.Code
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusAccepted] != 1 || count[http.StatusUnauthorized] != n-1 {
		t.Errorf("status counts %v, want one 202 and %d 401", count, n-1)
	}
	if len(st.called()) != 1 {
		t.Errorf("Starter called %d times, want 1", len(st.called()))
	}
}

// A full replay set refuses new requests instead of forgetting live
// signatures, and makes room once they expire.
func TestReleaseHandlerReplaySetFull(t *testing.T) {
	st := &starter{runID: 1}
	clk := &clock{t: t0}
	h := newHandler(t, st, &syncBuffer{}, func(o *hook.Options) {
		o.Now = clk.now
		o.MaxSeen = 2
	})
	for i := range 2 {
		if w, _ := serve(t, h, signedRequest(goodBody, t0.Add(time.Duration(i)*time.Second), testSecret)); w.Code != http.StatusAccepted {
			t.Fatalf("request %d: status %d, want 202", i+1, w.Code)
		}
	}
	full := signedRequest(goodBody, t0.Add(-time.Minute), testSecret)
	w, a := serve(t, h, full)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(a.Error, "too many") {
		t.Errorf("third request: status %d, error %q; want 503 too many", w.Code, a.Error)
	}
	// The first entry expires at t0+window; the clock is at t0.
	if got, want := w.Header().Get("Retry-After"), strconv.Itoa(int(window/time.Second)); got != want {
		t.Errorf("Retry-After = %q, want %q", got, want)
	}
	// The refused request was not recorded: it passes once there is room.
	clk.set(t0.Add(window + time.Second)) // the first entry has expired
	full = signedRequest(goodBody, t0.Add(time.Second+window), testSecret)
	if w, _ := serve(t, h, full); w.Code != http.StatusAccepted {
		t.Errorf("after expiry: status %d, want 202", w.Code)
	}
	if w, _ := serve(t, h, signedRequest(goodBody, t0.Add(2*time.Second+window), testSecret)); w.Code != http.StatusServiceUnavailable {
		t.Errorf("full again: status %d, want 503", w.Code)
	}
	if got := len(st.called()); got != 3 {
		t.Errorf("Starter called %d times, want 3", got)
	}
}

func TestReleaseHandlerDisabled(t *testing.T) {
	logs := &syncBuffer{}
	h, err := hook.NewReleaseHandler(hook.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		r := signedRequest(goodBody, time.Now(), testSecret)
		r.Method = method
		w, a := serve(t, h, r)
		if w.Code != http.StatusNotFound || a.Error != hook.DisabledMessage {
			t.Errorf("%s: status %d, error %q; want 404 %q", method, w.Code, a.Error, hook.DisabledMessage)
		}
	}
	if n := strings.Count(logs.String(), "outcome=disabled"); n != 2 {
		t.Errorf("%d disabled log lines, want 2:\n%s", n, logs)
	}
}

func TestNewReleaseHandlerOptions(t *testing.T) {
	st := &starter{}
	good := hook.Options{Secret: []byte(testSecret), Start: st.start, Validate: release.ValidateName}
	tests := []struct {
		name string
		mod  func(*hook.Options)
		ok   bool
	}{
		{"defaults", func(*hook.Options) {}, true},
		{"short secret", func(o *hook.Options) { o.Secret = []byte("short-s3cret") }, false},
		{"secret of MinSecretLen", func(o *hook.Options) { o.Secret = bytes.Repeat([]byte("k"), hook.MinSecretLen) }, true},
		{"no Start", func(o *hook.Options) { o.Start = nil }, false},
		{"no Validate", func(o *hook.Options) { o.Validate = nil }, false},
		{"negative window", func(o *hook.Options) { o.ReplayWindow = -time.Second }, false},
		{"negative MaxBody", func(o *hook.Options) { o.MaxBody = -1 }, false},
		{"negative MaxSeen", func(o *hook.Options) { o.MaxSeen = -1 }, false},
		{"disabled needs nothing", func(o *hook.Options) { *o = hook.Options{} }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.mod(&o)
			h, err := hook.NewReleaseHandler(o)
			if tc.ok != (err == nil) || tc.ok != (h != nil) {
				t.Fatalf("handler %v, error %v; want ok=%v", h, err, tc.ok)
			}
			if err != nil && !errors.Is(err, hook.ErrInvalidOptions) {
				t.Errorf("error %v does not wrap ErrInvalidOptions", err)
			}
			if err != nil && strings.Contains(err.Error(), string(o.Secret)) && len(o.Secret) > 0 {
				t.Errorf("error %v contains the secret", err)
			}
		})
	}
}

// The default MaxBody, ReplayWindow and MaxSeen apply when left zero.
func TestReleaseHandlerDefaults(t *testing.T) {
	st := &starter{runID: 1}
	h := newHandler(t, st, &syncBuffer{}, func(o *hook.Options) { o.MaxBody, o.ReplayWindow = 0, 0 })
	big := goodBody + strings.Repeat(" ", hook.DefaultMaxBody-len(goodBody))
	if w, _ := serve(t, h, signedRequest(big, t0, testSecret)); w.Code != http.StatusAccepted {
		t.Errorf("body of DefaultMaxBody: status %d, want 202", w.Code)
	}
	if w, _ := serve(t, h, signedRequest(big+" ", t0.Add(time.Second), testSecret)); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("body over DefaultMaxBody: status %d, want 413", w.Code)
	}
	if w, _ := serve(t, h, signedRequest(goodBody, t0.Add(-hook.DefaultReplayWindow), testSecret)); w.Code != http.StatusAccepted {
		t.Errorf("at the default window's edge: status %d, want 202", w.Code)
	}
	if w, _ := serve(t, h, signedRequest(goodBody, t0.Add(-hook.DefaultReplayWindow-time.Second), testSecret)); w.Code != http.StatusUnauthorized {
		t.Errorf("past the default window: status %d, want 401", w.Code)
	}
}

// Sign matches the shell recipe of the package documentation:
//
//	printf '%s.%s' 1732527000 '{"release":"1.5"}' | openssl dgst -sha256 -hmac hook-secret-0123456789abcdef -r
func TestSign(t *testing.T) {
	got := hook.Sign([]byte(testSecret), "1732527000", []byte(goodBody))
	want := "sha256=0af96eff7e25ceff0f39b5469d45bbcb70827b8bcbccbcc7cb7526604f8ecf4b"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	if hook.Sign([]byte(testSecret), "1732527001", []byte(goodBody)) == want {
		t.Error("Sign ignores the timestamp")
	}
}

// Through a real server and client: the happy path, and a body over the
// limit announced by Content-Length.
func TestReleaseHandlerRealServer(t *testing.T) {
	st := &starter{runID: 11}
	logs := &syncBuffer{}
	h := newHandler(t, st, logs, func(o *hook.Options) { o.Now = time.Now })
	srv := httptest.NewServer(h)
	defer srv.Close()

	post := func(body string) (*http.Response, answer) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/hooks/release", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(hook.HeaderTimestamp, ts)
		req.Header.Set(hook.HeaderSignature, hook.Sign([]byte(testSecret), ts, []byte(body)))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a answer
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			t.Fatalf("response: %v", err)
		}
		return resp, a
	}

	resp, a := post(goodBody)
	if resp.StatusCode != http.StatusAccepted || a.RunID == nil || *a.RunID != 11 || a.Release != "1.5" {
		t.Errorf("good request: status %d, answer %+v; want 202 run 11 release 1.5", resp.StatusCode, a)
	}
	resp, a = post(strings.Repeat(" ", maxBody+1))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized: status %d (%q), want 413", resp.StatusCode, a.Error)
	}
	if got := st.called(); len(got) != 1 || got[0] != "1.5" {
		t.Errorf("Starter calls %q, want [1.5]", got)
	}
	if !strings.Contains(logs.String(), "remote=127.0.0.1:") {
		t.Errorf("log lacks the remote address:\n%s", logs)
	}
}

// The Starter gets the request's context.
func TestReleaseHandlerStarterContext(t *testing.T) {
	type key struct{}
	var got any
	h := newHandler(t, &starter{}, &syncBuffer{}, func(o *hook.Options) {
		o.Start = func(ctx context.Context, _ string) (int64, error) {
			got = ctx.Value(key{})
			return 5, nil
		}
	})
	r := signedRequest(goodBody, t0, testSecret)
	r = r.WithContext(context.WithValue(r.Context(), key{}, "request"))
	if w, _ := serve(t, h, r); w.Code != http.StatusAccepted {
		t.Fatalf("status %d, want 202", w.Code)
	}
	if got != "request" {
		t.Errorf("Starter context value = %v, want the request's", got)
	}
}
