// Package hook serves the two small HTTP endpoints of `sentry run` that other
// systems call: the authenticated release hook, POST /hooks/release, and the
// health check, GET /healthz (docs/CONTRACTS.md, section 7 (The release
// hook)). The daemon mounts the handlers on its mux:
//
//	rh, err := hook.NewReleaseHandler(hook.Options{Secret: secret, Start: start})
//	mux.Handle("/hooks/release", rh)
//	mux.Handle("/healthz", hook.NewHealthHandler(map[string]hook.HealthChecker{"database": ping}, 5*time.Second))
//
// # The release hook
//
// A client POSTs {"release": "1.5"} with two headers:
//
//	X-Sentry-Timestamp: 1732527000                 (unix seconds, decimal)
//	X-Sentry-Signature: sha256=<64 hex digits>     (Sign(secret, timestamp, body))
//
// The signature is the HMAC-SHA256, under the hook secret, of the timestamp
// header's exact text, a '.', and the raw body bytes. A shell client:
//
//	ts=$(date +%s); body='{"release":"1.5"}'
//	sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$SENTRY_HOOK_SECRET" -r | cut -d' ' -f1)
//	curl -fsS -X POST -H "X-Sentry-Timestamp: $ts" -H "X-Sentry-Signature: sha256=$sig" \
//	     --data-binary "$body" http://127.0.0.1:8080/hooks/release
//
// Every signed request is good for one use: a client that gets a 409 or a 503
// and wants to try again signs a new request with a fresh timestamp.
package hook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Header names and the signature prefix of the release hook
// (docs/CONTRACTS.md, section 7 (The release hook)).
const (
	HeaderTimestamp = "X-Sentry-Timestamp"
	HeaderSignature = "X-Sentry-Signature"
	SignaturePrefix = "sha256="
)

// Defaults of Options.
const (
	DefaultReplayWindow = 5 * time.Minute
	DefaultMaxBody      = 64 << 10
	DefaultMaxSeen      = 10_000
)

// MinSecretLen is the shortest hook secret NewReleaseHandler accepts. One
// captured request lets an attacker test guesses of the secret offline, so a
// short secret is as good as none; generate one with `openssl rand -hex 32`.
const MinSecretLen = 16

// DisabledMessage is the error text of every answer of a release hook that
// has no secret.
const DisabledMessage = "release hook disabled: no hook secret configured"

// maxTimestampDigits bounds X-Sentry-Timestamp: unix seconds have 10 digits
// until the year 2286; 18 digits never overflow an int64.
const maxTimestampDigits = 18

// maxErrorText caps an error text sent to the client or logged as the
// outcome, so that a 64 KiB release name is not echoed back.
const maxErrorText = 200

// ErrInvalidOptions is wrapped by NewReleaseHandler's errors.
var ErrInvalidOptions = errors.New("invalid release hook options")

// ErrBusy is wrapped by the errors a Starter returns when a prime of the
// requested release is already running. The hook answers 409 Conflict.
var ErrBusy = errors.New("a prime of this release is already running")

// BusyError is an ErrBusy that knows the id of the run already in progress;
// the hook's 409 answer carries it as "run_id". errors.Is(BusyError{},
// ErrBusy) is true.
type BusyError struct {
	// RunID is the running prime's id; 0 when unknown (then no run_id is
	// sent).
	RunID int64
}

// Error says which run is busy.
func (e BusyError) Error() string {
	if e.RunID == 0 {
		return ErrBusy.Error()
	}
	return fmt.Sprintf("%v (run %d)", ErrBusy, e.RunID)
}

// Unwrap returns ErrBusy.
func (e BusyError) Unwrap() error { return ErrBusy }

// RefusedError is returned by a Starter that refuses the release itself,
// starting nothing: the hook answers Status (404: the master does not have
// the release; 422: what it has is no usable manifest) with Reason as the
// error text, which must therefore hold no secret.
type RefusedError struct {
	Status int
	Reason string
}

func (e RefusedError) Error() string { return e.Reason }

// Starter starts a prime of release in the background and returns its run
// id at once. It must not wait for the prime itself.
//
// ctx is the HTTP request's context: it bounds the Starter's own work (say,
// inserting the run's row) and is cancelled as soon as the hook has
// answered, so the background prime must run under a context of its own
// (the daemon's), never under ctx.
//
// An error wrapping ErrBusy (a BusyError when the running run's id is
// known) means a prime of that release is already running: the hook answers
// 409. A RefusedError answers its status (404, 422). Any other error means nothing was started: the hook answers 503
// "could not start" and logs the error, which therefore must not hold a
// secret; the error text is never sent to the client.
//
// release has passed Options.Validate.
type Starter func(ctx context.Context, release string) (runID int64, err error)

// Options configures NewReleaseHandler.
type Options struct {
	// Secret is the HMAC-SHA256 key (hook.secret, SENTRY_HOOK_SECRET).
	// Empty disables the hook: every request, whatever its method, is
	// answered 404 {"error": DisabledMessage}. Otherwise it must be at least
	// MinSecretLen bytes. It is never logged nor sent.
	Secret []byte
	// ReplayWindow is how far X-Sentry-Timestamp may be from Now, in either
	// direction; it is also how long an accepted signature is remembered.
	// 0 means DefaultReplayWindow; negative is an error.
	ReplayWindow time.Duration
	// Start starts a prime. Required unless the hook is disabled.
	Start Starter
	// Validate checks the release name after authentication; its error
	// text is sent with a 400 (cut at 200 bytes). Required unless the hook
	// is disabled, since the name ends up in paths and URLs: pass
	// sentry.ValidateReleaseName (this package cannot default to it, as
	// package sentry imports this one).
	Validate func(release string) error
	// Now is the clock; nil means time.Now. Tests inject a fixed clock.
	Now func() time.Time
	// Logger receives one info line per request; nil discards them.
	Logger *slog.Logger
	// MaxBody bounds the request body in bytes; a larger body is answered
	// 413. 0 means DefaultMaxBody; negative is an error.
	MaxBody int64
	// MaxSeen bounds the replay set: how many accepted signatures still
	// inside the window are remembered. When it is full, further requests
	// are answered 503 (with Retry-After) instead of forgetting a signature
	// that could still be replayed. 0 means DefaultMaxSeen; negative is an
	// error.
	MaxSeen int
}

// Sign returns the X-Sentry-Signature value for a release hook request:
// "sha256=" and the lower-case hex HMAC-SHA256, under secret, of timestamp
// (the X-Sentry-Timestamp header's exact text), a '.', and body.
func Sign(secret []byte, timestamp string, body []byte) string {
	return SignaturePrefix + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp)) // a hash.Hash never returns an error
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// NewReleaseHandler returns the handler of POST /hooks/release. It checks,
// in this order, answering JSON {"error": "..."} at the first failure:
//
//  1. the hook is enabled (Secret set), else 404;
//  2. the method is POST, else 405 with Allow: POST;
//  3. the body fits MaxBody, else 413;
//  4. authentication, else 401 "unauthorized: <reason>" and the Starter is
//     not called: one X-Sentry-Timestamp of 1 to 18 decimal digits within
//     ReplayWindow of Now (either direction), one X-Sentry-Signature of
//     "sha256=" and 64 hex digits (either case) equal, by hmac.Equal, to
//     Sign(Secret, timestamp, body), and a (timestamp, signature) pair not
//     already accepted ("replayed");
//  5. room in the replay set, else 503 with Retry-After;
//  6. the body is exactly one JSON object with exactly one member,
//     "release" (matched case-sensitively, not repeated), whose value is a
//     string, followed by nothing but white space, else 400;
//  7. Validate(release), else 400 with the validation error;
//  8. Start: 202 {"run_id": N, "release": R}; an ErrBusy 409 {"error":
//     ..., "release": R, "run_id": N} (run_id when known); a RefusedError
//     its status (404 or 422) {"error": reason, "release": R}; another
//     error 503.
//
// A pair is consumed once it authenticates (step 4), whatever the outcome of
// steps 6 to 8.
//
// Replay protection is per process and in memory: a restarted daemon, or a
// second daemon behind the same address, accepts a request once more if its
// timestamp is still inside the window. Accepted pairs are forgotten once
// their timestamp has left the window, as measured by Now; a wall clock
// stepped back by more than the window could re-open them.
//
// Every request is logged at info with its status, outcome, remote address
// and, once authenticated, the release; never a signature nor the secret.
func NewReleaseHandler(o Options) (http.Handler, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(o.Secret) == 0 {
		return &releaseHandler{log: log}, nil
	}
	if len(o.Secret) < MinSecretLen {
		return nil, fmt.Errorf("hook: %w: the hook secret is %d bytes, want at least %d (generate one with `openssl rand -hex 32`)", ErrInvalidOptions, len(o.Secret), MinSecretLen)
	}
	if o.Start == nil || o.Validate == nil {
		return nil, fmt.Errorf("hook: %w: Start and Validate are required", ErrInvalidOptions)
	}
	if o.ReplayWindow < 0 || o.MaxBody < 0 || o.MaxSeen < 0 {
		return nil, fmt.Errorf("hook: %w: ReplayWindow (%s), MaxBody (%d) and MaxSeen (%d) must not be negative", ErrInvalidOptions, o.ReplayWindow, o.MaxBody, o.MaxSeen)
	}
	h := &releaseHandler{
		secret:   bytes.Clone(o.Secret),
		window:   cmpOr(o.ReplayWindow, DefaultReplayWindow),
		start:    o.Start,
		validate: o.Validate,
		now:      o.Now,
		log:      log,
		maxBody:  cmpOr(o.MaxBody, DefaultMaxBody),
	}
	h.seen = newSeenSet(cmpOr(o.MaxSeen, DefaultMaxSeen))
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

type releaseHandler struct {
	secret   []byte // empty: disabled
	window   time.Duration
	start    Starter
	validate func(string) error
	now      func() time.Time
	log      *slog.Logger
	maxBody  int64
	seen     *seenSet
}

// response is the JSON of every answer.
type response struct {
	Error   string `json:"error,omitempty"`
	RunID   *int64 `json:"run_id,omitempty"`
	Release string `json:"release,omitempty"`
}

// outcome is what handle decided: the answer, and what to log about it.
type outcome struct {
	status     int
	resp       response
	reason     string // the log's outcome; the client's error text when resp.Error is empty
	release    string // once authenticated and parsed
	err        error  // logged, never sent
	allow      string
	retryAfter time.Duration
}

func fail(status int, msg string) outcome {
	return outcome{status: status, resp: response{Error: msg}, reason: msg}
}

func (h *releaseHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o := h.handle(w, r)
	if o.allow != "" {
		w.Header().Set("Allow", o.allow)
	}
	if o.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((o.retryAfter+time.Second-1)/time.Second), 10))
	}
	writeJSON(w, o.status, o.resp)

	attrs := []slog.Attr{
		slog.Int("status", o.status),
		slog.String("outcome", o.reason),
		slog.String("remote", r.RemoteAddr),
		slog.String("method", truncate(r.Method, 16)),
	}
	if o.release != "" {
		attrs = append(attrs, slog.String("release", truncate(o.release, 80)))
	}
	if o.resp.RunID != nil {
		attrs = append(attrs, slog.Int64("run_id", *o.resp.RunID))
	}
	if o.err != nil {
		attrs = append(attrs, slog.String("error", truncate(o.err.Error(), 500)))
	}
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "release hook", attrs...)
}

func (h *releaseHandler) handle(w http.ResponseWriter, r *http.Request) outcome {
	if len(h.secret) == 0 {
		o := fail(http.StatusNotFound, DisabledMessage)
		o.reason = "disabled"
		return o
	}
	if r.Method != http.MethodPost {
		o := fail(http.StatusMethodNotAllowed, "method not allowed: use POST")
		o.allow = http.MethodPost
		return o
	}
	body, o, ok := h.readBody(w, r)
	if !ok {
		return o
	}
	now := h.now()
	key, expires, reason := h.authenticate(r.Header, body, now)
	if reason != "" {
		return fail(http.StatusUnauthorized, "unauthorized: "+reason)
	}
	switch replayed, full, retry := h.seen.add(key, expires, now); {
	case replayed:
		return fail(http.StatusUnauthorized, "unauthorized: replayed")
	case full:
		o := fail(http.StatusServiceUnavailable, "too many recent hook requests; sign a new request and retry later")
		o.retryAfter = retry
		return o
	}

	release, err := parseBody(body)
	if err != nil {
		return fail(http.StatusBadRequest, truncate("bad request body: "+err.Error(), maxErrorText))
	}
	if err := h.validate(release); err != nil {
		o := fail(http.StatusBadRequest, truncate(err.Error(), maxErrorText))
		o.release = release
		return o
	}

	runID, err := h.start(r.Context(), release)
	switch {
	case err == nil:
		return outcome{status: http.StatusAccepted, resp: response{RunID: &runID, Release: release}, reason: "started", release: release}
	case errors.As(err, new(RefusedError)):
		var re RefusedError
		errors.As(err, &re)
		status := re.Status
		if status != http.StatusNotFound && status != http.StatusUnprocessableEntity {
			status = http.StatusUnprocessableEntity
		}
		o := fail(status, truncate(re.Reason, maxErrorText))
		o.resp.Release = release
		o.reason, o.release = "refused", release
		return o
	case errors.Is(err, ErrBusy):
		o := fail(http.StatusConflict, truncate(fmt.Sprintf("a prime of release %s is already running", release), maxErrorText))
		o.resp.Release = release
		var be BusyError
		if errors.As(err, &be) && be.RunID != 0 {
			o.resp.RunID = &be.RunID
		}
		o.reason, o.release = "busy", release
		return o
	default:
		o := fail(http.StatusServiceUnavailable, truncate(fmt.Sprintf("could not start a prime of release %s", release), maxErrorText))
		o.reason, o.release, o.err = "could not start", release, err
		return o
	}
}

// readBody reads the whole body, at most h.maxBody bytes.
func (h *releaseHandler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, outcome, bool) {
	if r.Body == nil {
		return nil, outcome{}, true
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", h.maxBody)), false
		}
		o := fail(http.StatusBadRequest, "could not read the request body")
		o.err = err
		return nil, o, false
	}
	return body, outcome{}, true
}

// authenticate checks the headers against body at now. It returns the
// replay key and the time after which the pair can no longer pass the
// window check, or a short reason for the 401.
func (h *releaseHandler) authenticate(hdr http.Header, body []byte, now time.Time) (seenKey, time.Time, string) {
	var key seenKey
	tsVals := hdr.Values(HeaderTimestamp)
	if len(tsVals) == 0 {
		return key, time.Time{}, "missing timestamp"
	}
	tsText := tsVals[0]
	if len(tsVals) != 1 || !isDigits(tsText, maxTimestampDigits) {
		return key, time.Time{}, "malformed timestamp"
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil { // cannot happen with at most 18 digits
		return key, time.Time{}, "malformed timestamp"
	}
	t := time.Unix(ts, 0)
	switch d := now.Sub(t); {
	case d > h.window:
		return key, time.Time{}, "stale timestamp"
	case d < -h.window:
		return key, time.Time{}, "timestamp in the future"
	}

	sigVals := hdr.Values(HeaderSignature)
	if len(sigVals) == 0 {
		return key, time.Time{}, "missing signature"
	}
	hexSig, ok := strings.CutPrefix(sigVals[0], SignaturePrefix)
	if len(sigVals) != 1 || !ok || len(hexSig) != hex.EncodedLen(sha256.Size) {
		return key, time.Time{}, "malformed signature"
	}
	if _, err := hex.Decode(key.mac[:], []byte(hexSig)); err != nil {
		return key, time.Time{}, "malformed signature"
	}
	if !hmac.Equal(key.mac[:], mac(h.secret, tsText, body)) {
		return key, time.Time{}, "bad signature"
	}
	key.ts = ts
	return key, t.Add(h.window), ""
}

func isDigits(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseBody accepts exactly {"release": "<string>"}: one JSON object, one
// member named exactly "release" holding a string, white space around it and
// nothing after. encoding/json alone would match "Release" too, keep the
// last of two "release" members and take null for "".
func parseBody(body []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return "", errors.New(`empty body, want {"release": "<name>"}`)
		}
		return "", fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return "", errors.New(`want a JSON object {"release": "<name>"}`)
	}
	var release *string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", fmt.Errorf("not JSON: %w", err)
		}
		name, _ := tok.(string)
		if name != "release" {
			return "", fmt.Errorf("unknown field %q: the only field is \"release\"", truncate(name, 40))
		}
		if release != nil {
			return "", errors.New(`field "release" given twice`)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", fmt.Errorf("not JSON: %w", err)
		}
		var s string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			return "", errors.New(`field "release" must be a string`)
		}
		release = &s
	}
	if tok, err := dec.Token(); err != nil {
		return "", fmt.Errorf("not JSON: %w", err)
	} else if d, ok := tok.(json.Delim); !ok || d != '}' {
		return "", errors.New("not JSON: the object is not closed")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", errors.New("trailing data after the JSON object")
	}
	if release == nil {
		return "", errors.New(`missing field "release"`)
	}
	return *release, nil
}

// truncate cuts s to at most n bytes on a UTF-8 boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // our response types always marshal
		b = []byte(`{"error":"internal error"}`)
		status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n')) // the client has gone if this fails; nothing to do
}
