package checks

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	retryablehttp "github.com/hashicorp/go-retryablehttp"
)

// ErrInvalidTarget is wrapped by Result.Err (with KindInternal) when a Target
// or base URL cannot be checked: sentry's own data is wrong, the mirror is not
// to blame.
var ErrInvalidTarget = errors.New("invalid check target")

// Target is one file on one mirror.
type Target struct {
	// URL is the file's absolute http or https URL, already path-escaped.
	URL string
	// Size is the expected size in bytes; -1 means unknown (Head only:
	// Verify needs a size to bound the body).
	Size int64
	// Algo is the checksum algorithm, "sha256" or "sha512"; "" skips the
	// checksum (Verify then checks the size only).
	Algo string
	// Hash is the expected digest in hex (compared case-insensitively).
	Hash string
	// ETag and LastModified are validators from an earlier check of the same
	// URL. When set they are sent as If-None-Match and If-Modified-Since and
	// a 304 answer yields KindUnchanged. Leave them empty to force a full
	// check (a deep sweep that must re-hash should).
	ETag, LastModified string
	// PreviousHash, when set, is the file's digest before its manifest
	// last changed it (same Algo): a body that hashes to it is the
	// previous version (Result.Stale).
	PreviousHash string
}

// Result is the outcome of one probe. Every string in it is bounded in length
// and valid UTF-8, whatever the mirror sent, and free of secrets (URLs lose
// their user info and query).
type Result struct {
	// Kind is the outcome; see the Kind constants.
	Kind Kind
	// Status is the HTTP status of the last answer, 0 when there was none.
	Status int
	// Bytes is the number of body bytes read (Verify, Reachable's GET) or the
	// size the mirror reported (Head: Content-Length or Content-Range
	// total; -1 when unknown).
	Bytes int64
	// Hashed is true when the whole body went through the hash and the
	// digest was compared (KindOK or KindChecksumMismatch from Verify).
	Hashed bool
	// Stale: KindChecksumMismatch, and the body is the previous version
	// of the file (Target.PreviousHash): a cache that kept what it had.
	Stale bool
	// Duration is the wall time of the whole probe, retries and body
	// included.
	Duration time.Duration
	// Attempts is the number of HTTP attempts made (retries included,
	// redirect hops not counted; Head's range fallback adds its own).
	Attempts int
	// Detail is one human-readable sentence for reports, e.g. "size 1000,
	// want 1024". Always set on failure.
	Detail string
	// ETag and LastModified are the validators of the last answer, to pass
	// back in a later Target.
	ETag, LastModified string
	// CacheStatus summarises the cache headers of the last answer (see
	// CacheStatus).
	CacheStatus string
	// Cache is what those headers say of the answer: a hit, a miss, or
	// nothing (see CacheWordOf).
	Cache CacheWord
	// Sampled is how many blocks of the file were read and compared with
	// the master's block digests (Sample; 0 for every other prober), and
	// Blocks how many blocks the file has: "Sampled of Blocks blocks".
	// SampledBytes is the size of the blocks compared.
	Sampled, Blocks int
	SampledBytes    int64
	// FinalURL is the URL that gave the last answer, after redirects,
	// without user info, query or fragment.
	FinalURL string
	// Cert is the certificate an https answer (or a failed verification)
	// came with: set by Reachable.
	Cert *Cert
	// Err is the underlying error, for logs; nil when Kind is not a
	// failure. On KindInternal from a cancelled parent context it wraps
	// ctx.Err(), so errors.Is(res.Err, context.Canceled) holds: callers
	// check ctx.Err() and drop such results.
	Err error
}

// Prober checks one target with one client. Head and Verify are Probers.
// A Prober never panics on mirror input, always closes what it opens, and
// returns once ctx is done (with KindInternal).
type Prober func(ctx context.Context, c *Client, t Target) Result

var (
	_ Prober = Head
	_ Prober = Verify
)

// Bounds on what is read from a mirror outside the file body.
const (
	drainLimit      = 4 << 10 // bytes drained from an unwanted body so the connection can be reused
	rangeDrainLimit = 64      // bytes read from a range-request answer
	reachableLimit  = 4 << 10 // bytes read by Reachable's GET fallback
	maxDetail       = 300
	maxValidator    = 256
	maxCacheStatus  = 256
	maxURL          = 512
	maxTargetField  = 1024
	hashPrefixLen   = 12
)

// bufPool holds the read buffers used to stream bodies through the hash.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

// probe is the state of one prober call.
type probe struct {
	c      *Client
	parent context.Context
	start  time.Time
	url    *url.URL // what is checked, parsed once (parse)
	// plain is the URL as given when it is fit for reports as it stands
	// (no user info, query or fragment; printable and short): the
	// FinalURL of an answer that was not redirected. "" otherwise.
	plain    string
	attempts int // all requests of the probe
	last     int // attempts of the last request (countAttempt)
	res      Result
}

func newProbe(ctx context.Context, c *Client, headBytes bool) *probe {
	p := &probe{c: c, parent: ctx, start: time.Now()}
	if headBytes {
		p.res.Bytes = -1
	}
	return p
}

// done finalises and returns the result.
//
// A failure observed while the parent context was being cancelled (a 503
// not retried because of the cancellation, a body cut by it) is not the
// mirror's final answer: it becomes KindInternal wrapping ctx.Err(), so it is
// never blamed on the mirror. Successes stand: what was verified is true.
func (p *probe) done() Result {
	if k := p.res.Kind; k.Failed() && k != KindInternal && p.parent.Err() != nil {
		p.res.Kind = KindInternal
		p.res.Detail = "check cancelled: " + p.parent.Err().Error()
		if p.res.Err != nil {
			p.res.Err = fmt.Errorf("checks: check cancelled: %w (%v)", p.parent.Err(), p.res.Err)
		} else {
			p.res.Err = fmt.Errorf("checks: check cancelled: %w (was %s)", p.parent.Err(), k)
		}
	}
	r := p.res
	r.Attempts = p.attempts
	r.Duration = time.Since(p.start)
	r.Detail = clip(r.Detail, maxDetail)
	if r.Kind.Failed() && r.Detail == "" {
		r.Detail = string(r.Kind)
	}
	if r.Kind.Failed() && r.Err == nil {
		r.Err = fmt.Errorf("checks: %s: %s", r.Kind, r.Detail)
	}
	if !r.Kind.Failed() {
		r.Err = nil
	}
	if p.c != nil && p.c.log.Enabled(p.parent, slog.LevelDebug) {
		p.c.log.LogAttrs(p.parent, slog.LevelDebug, "check finished",
			slog.String("kind", string(r.Kind)), slog.Int("status", r.Status),
			slog.Int64("bytes", r.Bytes), slog.Int("attempts", r.Attempts),
			slog.Duration("duration", r.Duration), slog.String("final_url", r.FinalURL),
			slog.String("detail", r.Detail))
	}
	return r
}

func (p *probe) set(k Kind, format string, args ...any) Result {
	p.res.Kind = k
	if len(args) == 0 {
		p.res.Detail = format // a constant sentence: no copy
	} else {
		p.res.Detail = fmt.Sprintf(format, args...)
	}
	return p.done()
}

// invalid reports a problem with sentry's own input.
func (p *probe) invalid(format string, args ...any) Result {
	msg := fmt.Sprintf(format, args...)
	p.res.Kind = KindInternal
	p.res.Detail = "invalid target: " + msg
	p.res.Err = fmt.Errorf("checks: %w: %s", ErrInvalidTarget, msg)
	return p.done()
}

// do makes one request of the probe's URL with retries. hdr
// (nil for none) becomes the request's header, so the caller must not
// keep it; its keys must be canonical. body, when not nil, is sent with
// the request and resent on every retry (the retry library rewinds it).
// The caller owns (and must close) the returned body.
func (p *probe) do(method string, hdr http.Header, body []byte) (*http.Response, error) {
	p.last = 0
	ctx := context.WithValue(p.parent, attemptsKey{}, p) // countAttempt sets p.last
	if hdr == nil {
		hdr = make(http.Header, 2)
	}
	// Shared, never written to: net/http copies a header's values when
	// it changes them (redirects, retries).
	hdr["User-Agent"] = p.c.uaValue
	hdr["Accept-Encoding"] = identityValue
	// Built from the URL checkURL parsed (http.NewRequest would parse its
	// string again, once per check), which net/http only reads.
	hr := (&http.Request{Method: method, URL: p.url, Host: p.url.Host, Header: hdr,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}).WithContext(ctx)
	req := &retryablehttp.Request{Request: hr}
	var raw any
	if body != nil {
		raw = body
	}
	if err := req.SetBody(raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTarget, err)
	}
	resp, err := p.c.rc.Do(req)
	p.attempts += p.last
	var ue *url.Error
	if errors.As(err, &ue) {
		// Redirect targets may carry tokens in their query: keep them
		// out of logs.
		if u, perr := url.Parse(ue.URL); perr == nil {
			ue.URL = safeURL(u)
		}
	}
	if err != nil && resp != nil {
		// Only a refused redirect returns both; the body is already
		// closed, but keep what the answer tells.
		p.meta(resp)
		resp.Body.Close()
		resp = nil
	}
	if err == nil && resp == nil {
		err = errors.New("no response") // defensive: the library promises one or the other
	}
	return resp, err
}

// fail turns a request error into the result.
func (p *probe) fail(err error) Result {
	if p.parent.Err() != nil {
		return p.cancelled(err)
	}
	if errors.Is(err, ErrInvalidTarget) {
		p.res.Kind = KindInternal
		p.res.Detail = "invalid target: " + innermost(err)
		p.res.Err = err
		return p.done()
	}
	k, detail := classifyError(err)
	if p.last > 1 {
		detail += fmt.Sprintf(" (after %d attempts)", p.last)
	}
	p.res.Kind, p.res.Detail, p.res.Err = k, detail, err
	return p.done()
}

func (p *probe) cancelled(err error) Result {
	p.res.Kind = KindInternal
	p.res.Detail = "check cancelled: " + p.parent.Err().Error()
	if err == nil {
		p.res.Err = fmt.Errorf("checks: check cancelled: %w", p.parent.Err())
	} else {
		p.res.Err = fmt.Errorf("checks: check cancelled: %w (%v)", p.parent.Err(), err)
	}
	return p.done()
}

// meta records what every answer tells, whatever its status.
func (p *probe) meta(resp *http.Response) {
	p.res.Status = resp.StatusCode
	p.res.ETag = clip(first(resp.Header["Etag"]), maxValidator) // canonical keys, as net/http has them
	p.res.LastModified = clip(first(resp.Header["Last-Modified"]), maxValidator)
	p.res.CacheStatus = CacheStatus(resp.Header)
	p.res.Cache = CacheWordOf(resp.Header)
	switch {
	case resp.Request == nil || resp.Request.URL == nil:
	case resp.Request.URL == p.url && p.plain != "":
		p.res.FinalURL = p.plain // not redirected: what was asked for, fit as it is
	default:
		p.res.FinalURL = safeURL(resp.Request.URL)
	}
}

// status turns a non-success status into the result.
func (p *probe) status(code int, note string) Result {
	k := KindHTTPStatus
	switch code {
	case http.StatusNotFound, http.StatusGone:
		k = KindNotFound
	case http.StatusUnauthorized, http.StatusForbidden:
		k = KindForbidden
	}
	d := "HTTP " + strconv.Itoa(code)
	if t := http.StatusText(code); t != "" {
		d += " " + t
	}
	if p.last > 1 {
		d += fmt.Sprintf(" after %d attempts", p.last)
	}
	return p.set(k, "%s%s", d, note)
}

// conditional returns the request headers for t's validators, with
// room for the two every request carries (do), and whether there are
// any: only then is a 304 an answer. An ETag is sent alone: a server
// ignores If-Modified-Since beside If-None-Match (RFC 9110, 13.1.3), so
// the date is sent only when there is no ETag.
func conditional(t Target) (http.Header, bool) {
	h := make(http.Header, 4)
	switch {
	case t.ETag != "":
		h["If-None-Match"] = []string{t.ETag}
	case t.LastModified != "":
		h["If-Modified-Since"] = []string{t.LastModified}
	}
	return h, len(h) > 0
}

// identityValue is the Accept-Encoding of every request: the bytes must
// be the file's.
var identityValue = []string{"identity"}

// checkTarget validates the fields common to every prober and keeps the
// parsed URL for do.
func (p *probe) checkTarget(t Target) error {
	if err := p.parse(t.URL); err != nil {
		return err
	}
	if t.Size < -1 {
		return fmt.Errorf("Size %d is negative", t.Size)
	}
	for _, f := range []struct{ name, v string }{{"ETag", t.ETag}, {"LastModified", t.LastModified}} {
		if len(f.v) > maxTargetField {
			return fmt.Errorf("%s is longer than %d bytes", f.name, maxTargetField)
		}
		if strings.ContainsFunc(f.v, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
			return fmt.Errorf("%s contains control characters", f.name)
		}
	}
	return nil
}

// parse validates raw (checkURL) and keeps it for do.
func (p *probe) parse(raw string) error {
	u, err := checkURL(raw)
	if err != nil {
		return err
	}
	p.url, p.plain = u, ""
	if len(raw) <= maxURL && !strings.ContainsAny(raw, "@?#") && printable(raw) {
		p.plain = raw
	}
	return nil
}

// checkURL validates an absolute http or https URL and returns it parsed,
// an empty port dropped ("host:" is "host", as http.NewRequest has it).
func checkURL(raw string) (*url.URL, error) {
	if len(raw) > 8<<10 {
		return nil, errors.New("URL is longer than 8 KiB")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("URL does not parse: %s", innermost(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("URL scheme %q is not http or https", clip(u.Scheme, 16))
	}
	if u.Host == "" {
		return nil, errors.New("URL has no host")
	}
	u.Host = strings.TrimSuffix(u.Host, ":")
	return u, nil
}

// newHash returns the hash for algo and the expected digest length in hex.
func newHash(algo string) (hash.Hash, int, error) {
	switch algo {
	case "sha256":
		return sha256.New(), sha256.Size * 2, nil
	case "sha512":
		return sha512.New(), sha512.Size * 2, nil
	}
	return nil, 0, fmt.Errorf("Algo %q is not sha256 or sha512", clip(algo, 16))
}

// encodingNote returns a note for a Content-Encoding other than identity, to
// append to the Detail of whatever failure follows: the mirror compressed
// the file although sentry asked for identity, so the bytes are not the
// file's.
func encodingNote(h http.Header) string {
	ce := strings.TrimSpace(strings.Join(h["Content-Encoding"], ", "))
	if ce == "" || strings.EqualFold(ce, "identity") {
		return ""
	}
	return "; served with Content-Encoding " + clip(ce, 40) + " despite Accept-Encoding: identity"
}

// Head checks presence and size cheaply with a HEAD request.
//
//   - 200 with a Content-Length: compared with t.Size (size_mismatch when
//     different; KindOK when t.Size is -1). Result.Bytes is the
//     Content-Length.
//   - 200 without a Content-Length, or a HEAD refused with 405 or 501: a GET
//     with "Range: bytes=0-0" is sent, the size is taken from the
//     Content-Range total (a 206, or a 416 for an empty file) or from the
//     Content-Length of a 200 that ignored the range; at most 64 body bytes
//     are read. If the size is still unknown the result is KindOK with
//     Detail "size not reported".
//   - 304 to a conditional request (t.ETag / t.LastModified): KindUnchanged.
//   - 404/410 not_found, 401/403 forbidden, anything else http_status (5xx
//     and 429 retried first); network errors as documented on Verify.
func Head(ctx context.Context, c *Client, t Target) Result {
	p := newProbe(ctx, c, true)
	if c == nil {
		return p.invalid("nil Client")
	}
	if err := p.checkTarget(t); err != nil {
		return p.invalid("%s", err.Error())
	}
	if ctx.Err() != nil {
		return p.cancelled(nil)
	}
	hdr, cond := conditional(t)
	resp, err := p.do(http.MethodHead, hdr, nil)
	if err != nil {
		return p.fail(err)
	}
	p.meta(resp)
	drainClose(resp.Body, drainLimit)
	note := encodingNote(resp.Header)

	switch code := resp.StatusCode; {
	case code == http.StatusNotModified && cond:
		return p.set(KindUnchanged, "not modified since the last check")
	case code == http.StatusOK:
		if resp.ContentLength >= 0 {
			return p.size(resp.ContentLength, t.Size, "Content-Length", note)
		}
		if t.Size < 0 {
			return p.set(KindOK, "size not reported")
		}
		return p.rangeSize(t)
	case code == http.StatusMethodNotAllowed || code == http.StatusNotImplemented:
		return p.rangeSize(t)
	default:
		return p.status(code, note)
	}
}

// size judges a size the mirror reported.
func (p *probe) size(got, want int64, source, note string) Result {
	p.res.Bytes = got
	if want >= 0 && got != want {
		return p.set(KindSizeMismatch, "%s %d, want %d%s", source, got, want, note)
	}
	return p.set(KindOK, "")
}

// rangeSize is Head's fallback: GET the first byte and read the total size
// from Content-Range.
func (p *probe) rangeSize(t Target) Result {
	h, cond := conditional(t)
	h["Range"] = []string{"bytes=0-0"}
	resp, err := p.do(http.MethodGet, h, nil)
	if err != nil {
		return p.fail(err)
	}
	p.meta(resp)
	note := encodingNote(resp.Header)
	switch code := resp.StatusCode; {
	case code == http.StatusPartialContent || code == http.StatusRequestedRangeNotSatisfiable:
		drainClose(resp.Body, rangeDrainLimit)
		total, ok := contentRangeTotal(resp.Header.Get("Content-Range"))
		if !ok {
			if code == http.StatusRequestedRangeNotSatisfiable {
				return p.status(code, note)
			}
			return p.set(KindOK, "size not reported")
		}
		return p.size(total, t.Size, "Content-Range size", note)
	case code == http.StatusOK:
		// The range was ignored: do not download the file.
		resp.Body.Close()
		if resp.ContentLength >= 0 {
			return p.size(resp.ContentLength, t.Size, "Content-Length", note)
		}
		return p.set(KindOK, "size not reported")
	case code == http.StatusNotModified && cond:
		drainClose(resp.Body, rangeDrainLimit)
		return p.set(KindUnchanged, "not modified since the last check")
	default:
		drainClose(resp.Body, drainLimit)
		return p.status(code, note)
	}
}

// contentRangeTotal parses the complete length of a Content-Range value:
// "bytes 0-0/1234" or "bytes */1234". "*" (unknown) is not ok.
func contentRangeTotal(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return 0, false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(rest[i+1:]), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// Verify downloads the file with a GET and checks its size and checksum,
// streaming the body through the hash with a pooled buffer: the file is
// never held in memory or written to disk.
//
// Classification, in order:
//   - 304 to a conditional request: KindUnchanged (nothing hashed).
//   - 404/410 not_found, 401/403 forbidden, any status but 200 http_status
//     (5xx and 429 retried first, honouring Retry-After up to RetryWaitMax).
//   - A Content-Length other than t.Size: size_mismatch without reading the
//     body.
//   - At most t.Size+1 bytes are read; one byte more than t.Size is
//     too_large and reading stops at once (Bytes ≤ t.Size+1).
//   - The body ends cleanly before t.Size bytes (possible only without a
//     Content-Length): size_mismatch. The transfer breaks (connection closed
//     or reset before the declared Content-Length, or a chunked body cut
//     short): truncated.
//   - Full size, digest differs: checksum_mismatch (Detail has short
//     prefixes of both digests). Otherwise KindOK with Hashed set (Hashed is
//     false when t.Algo is "").
//   - A Content-Encoding other than identity is noted in the Detail of any
//     failure.
//
// Network failures: no body byte for BodyIdleTimeout, or connect / TLS
// handshake / response header timeouts: timeout; DNS failure: dns; refused,
// reset, unreachable: connect; certificate or handshake errors: tls; headers
// over MaxHeaderBytes: too_large; refused redirects: redirect. A cancelled or
// expired ctx yields KindInternal with Err wrapping ctx.Err().
//
// Body failures are not retried within the probe: the next check decides.
func Verify(ctx context.Context, c *Client, t Target) Result {
	return verify(ctx, c, t, nil)
}

// verify is Verify with also, when not nil, receiving every body byte
// as it is hashed (Digest's block digests).
func verify(ctx context.Context, c *Client, t Target, also io.Writer) Result {
	p, h, want, res, ok := beginVerify(ctx, c, t)
	if !ok {
		return res
	}
	if ctx.Err() != nil {
		return p.cancelled(nil)
	}

	hdr, cond := conditional(t)
	resp, err := p.do(http.MethodGet, hdr, nil)
	if err != nil {
		return p.fail(err)
	}
	p.meta(resp)
	note := encodingNote(resp.Header)
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
	case code == http.StatusNotModified && cond:
		drainClose(resp.Body, drainLimit)
		return p.set(KindUnchanged, "not modified since the last check")
	default:
		drainClose(resp.Body, drainLimit)
		return p.status(code, note)
	}
	return p.hashBody(resp, t, h, want, also, note)
}

// beginVerify starts a probe of t whose bytes are to be hashed: the probe,
// t's hash (nil when t.Algo is "") and expected digest; when ok is false,
// res is the result to return (c or t unusable).
func beginVerify(ctx context.Context, c *Client, t Target) (p *probe, h hash.Hash, want string, res Result, ok bool) {
	p = newProbe(ctx, c, false)
	if c == nil {
		return p, nil, "", p.invalid("nil Client"), false
	}
	h, want, res, ok = p.checkVerifyTarget(t)
	return p, h, want, res, ok
}

// checkVerifyTarget validates a target whose body is to be hashed and
// returns its hash (nil when t.Algo is "") and the expected digest; when
// ok is false, res is the result to return.
func (p *probe) checkVerifyTarget(t Target) (h hash.Hash, want string, res Result, ok bool) {
	if err := p.checkTarget(t); err != nil {
		return nil, "", p.invalid("%s", err.Error()), false
	}
	if t.Size < 0 {
		return nil, "", p.invalid("Verify needs the expected size"), false
	}
	want = strings.ToLower(t.Hash)
	if t.Algo != "" {
		var n int
		var err error
		if h, n, err = newHash(t.Algo); err != nil {
			return nil, "", p.invalid("%s", err.Error()), false
		}
		if len(want) != n {
			return nil, "", p.invalid("Hash has %d hex digits, %s needs %d", len(want), t.Algo, n), false
		}
		if _, err := hex.DecodeString(want); err != nil {
			return nil, "", p.invalid("Hash is not hex"), false
		}
	} else if t.Hash != "" {
		return nil, "", p.invalid("Hash given without Algo"), false
	}
	return h, want, Result{}, true
}

// hashBody judges a 200 answer carrying the whole file: its size, then
// its digest, reading at most t.Size+1 bytes through h (and also, when
// not nil). It closes the body.
func (p *probe) hashBody(resp *http.Response, t Target, h hash.Hash, want string, also io.Writer, note string) Result {
	if cl := resp.ContentLength; cl >= 0 && cl != t.Size {
		drainClose(resp.Body, drainLimit)
		return p.set(KindSizeMismatch, "Content-Length %d, want %d%s", cl, t.Size, note)
	}
	var sink io.Writer
	switch {
	case h != nil && also != nil:
		sink = io.MultiWriter(h, also)
	case h != nil:
		sink = h
	case also != nil:
		sink = also
	}
	n, rerr := readBody(resp.Body, t.Size+1, sink)
	resp.Body.Close() // not drained: after a failure the connection is not worth keeping
	p.res.Bytes = n
	switch {
	case n > t.Size:
		return p.set(KindTooLarge, "body exceeds the expected %d bytes%s", t.Size, note)
	case rerr != nil:
		return p.bodyFail(rerr, n, t.Size, resp.ContentLength, note)
	case n < t.Size:
		return p.set(KindSizeMismatch, "body ended after %d bytes, want %d%s", n, t.Size, note)
	case h == nil:
		return p.set(KindOK, "")
	}
	p.res.Hashed = true
	got := hex.EncodeToString(h.Sum(nil))
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		if prev := strings.ToLower(t.PreviousHash); prev != "" && got == prev {
			p.res.Stale = true
			return p.set(KindChecksumMismatch, "serves the previous version (stale): %s %s…, want %s…%s",
				t.Algo, got[:hashPrefixLen], want[:hashPrefixLen], note)
		}
		return p.set(KindChecksumMismatch, "%s %s…, want %s…%s", t.Algo, got[:hashPrefixLen], want[:hashPrefixLen], note)
	}
	return p.set(KindOK, "")
}

// readBody reads at most limit bytes of body into h (which may be nil) and
// returns the count and the read error (nil at a clean end). It stops as soon
// as limit bytes were read.
func readBody(body io.Reader, limit int64, h io.Writer) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	lr := io.LimitReader(body, limit)
	var n int64
	for n < limit {
		m, err := lr.Read(buf)
		if m > 0 {
			if h != nil {
				h.Write(buf[:m]) // hashes and the block writers never return an error
			}
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// bodyFail classifies an error while reading the body.
func (p *probe) bodyFail(err error, n, want, declared int64, note string) Result {
	if p.parent.Err() != nil {
		return p.cancelled(err)
	}
	p.res.Err = err
	if errors.Is(err, ErrBodyIdle) {
		return p.set(KindTimeout, "no body bytes or under %d for %s after %d of %d bytes%s", MinBodyProgress, p.c.opts.BodyIdleTimeout, n, want, note)
	}
	if k, d := classifyError(err); k == KindTimeout {
		return p.set(KindTimeout, "%s after %d of %d bytes%s", d, n, want, note)
	}
	if declared >= 0 {
		return p.set(KindTruncated, "body broke after %d of %d bytes (%s)%s", n, want, innermost(err), note)
	}
	return p.set(KindTruncated, "body broke after %d of %d bytes, no Content-Length (%s)%s", n, want, innermost(err), note)
}

// Reachable checks that a mirror answers at all: a HEAD on baseURL, and when
// that is answered 500 or 501 (servers with broken HEAD support) a GET of
// which at most 4 KiB are read. Any HTTP answer below 500 (even 403 or 404)
// means reachable: KindOK. 5xx (after retries) is http_status; network
// errors classify as for Verify. Bytes is the HEAD's Content-Length (-1 when
// unknown) or the number of bytes the GET read.
func Reachable(ctx context.Context, c *Client, baseURL string) Result {
	p := newProbe(ctx, c, true)
	if c == nil {
		return p.invalid("nil Client")
	}
	if err := p.parse(baseURL); err != nil {
		return p.invalid("%s", err.Error())
	}
	if ctx.Err() != nil {
		return p.cancelled(nil)
	}
	resp, err := p.do(http.MethodHead, nil, nil)
	if err != nil {
		p.res.Cert = certOfErr(baseURL, err)
		return p.fail(err)
	}
	p.meta(resp)
	p.res.Cert = certOfResp(resp)
	drainClose(resp.Body, drainLimit)
	p.res.Bytes = resp.ContentLength
	if resp.StatusCode == http.StatusInternalServerError || resp.StatusCode == http.StatusNotImplemented {
		resp, err = p.do(http.MethodGet, nil, nil)
		if err != nil {
			return p.fail(err)
		}
		p.meta(resp)
		n, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, reachableLimit))
		resp.Body.Close()
		p.res.Bytes = n
		// An answer came, so a body that then fails does not make the
		// mirror unreachable; a cancelled check is still ours.
		if rerr != nil && p.parent.Err() != nil {
			return p.cancelled(rerr)
		}
	}
	if resp.StatusCode >= 500 {
		return p.status(resp.StatusCode, "")
	}
	return p.set(KindOK, "")
}

// drainClose reads at most limit bytes of body, so that a short remainder
// does not cost the keep-alive connection, and closes it. The body-idle timer
// bounds the drain in time.
func drainClose(body io.ReadCloser, limit int64) {
	if body == http.NoBody { // a HEAD's
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(body, limit))
	body.Close()
}

// cacheHeaders are summarised by CacheStatus, in this order.
var cacheHeaders = [...]string{"Cache-Status", "X-Cache", "X-Cache-Status", "Age"}

// CacheStatus summarises the cache headers of an answer (Cache-Status,
// X-Cache, X-Cache-Status and Age, in that order) as "Name: value" pairs
// joined by "; ", e.g. "X-Cache-Status: HIT; Age: 12". It returns "" when
// none is present. Several values of one header are joined by ", ". The
// result is bounded (256 bytes) and sanitised: it comes from the mirror.
// h's keys are canonical, as net/http's answers have them.
func CacheStatus(h http.Header) string {
	var parts []string
	for _, name := range cacheHeaders {
		vs := h[name]
		if len(vs) == 0 {
			continue
		}
		v := clip(strings.TrimSpace(strings.Join(vs, ", ")), 100)
		parts = append(parts, name+": "+v)
	}
	return clip(strings.Join(parts, "; "), maxCacheStatus)
}

// safeURL renders u without user info, query or fragment, bounded.
func safeURL(u *url.URL) string {
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return clip(v.String(), maxURL)
}

// clip makes s safe for reports and the database: valid UTF-8, control
// characters replaced by spaces, at most n bytes (cut on a rune boundary,
// "…" appended when cut).
func clip(s string, n int) string {
	if len(s) <= n && printable(s) {
		return s // the common case, without a copy
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	const ell = "…"
	cut := max(n-len(ell), 0)
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ell
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// printable reports whether s is printable ASCII only (what clip leaves
// as it is).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
