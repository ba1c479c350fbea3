package checks

import (
	"context"
	"errors"
	"fmt"
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
	// hopSet is what the probe's redirect hops may reach, once worked
	// out (Client.hopPolicy); 0 before.
	hopSet classSet
	// ownOrigin: redirects are followed only to the origin of the URL
	// asked, and without ownHeaders, the headers the caller gave (Post).
	ownOrigin  bool
	ownHeaders []string
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
