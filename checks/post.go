package checks

import (
	"context"
	"io"
	"net/http"
	"strings"
)

// Bounds of Post.
const (
	// MaxPostBody bounds the request body Post sends (a trigger lists the
	// files of one release).
	MaxPostBody = 8 << 20
	// postDrainLimit bounds the answer body Post reads.
	postDrainLimit = 64 << 10
)

// Post sends body to rawURL with a POST through c: the same User-Agent,
// timeouts and retries of transient failures (connection errors,
// timeouts, 5xx, 429) as the probers. header is added to the request
// (User-Agent and Accept-Encoding are always the client's); it may be
// nil. The body is resent on every retry. A redirect is followed only to
// rawURL's own origin (scheme, host and port), without header (a
// trigger's signature goes to the configured URL and nowhere else; a
// 307/308 resends the body, a 301/302/303 turns it into a GET, as
// browsers do); a redirect to another host is refused, a redirect
// failure naming where it pointed.
//
// Any 2xx answer is KindOK. The answer body is drained, at most 64 KiB
// (Result.Bytes counts what was read), and its content is ignored; a body
// that breaks after a 2xx status does not undo the KindOK (the mirror
// accepted the request) but is noted in Detail. Other statuses are
// classified like the probers': 404/410 not_found, 401/403 forbidden,
// anything else http_status. Network failures classify as for Verify, and a
// cancelled ctx yields KindInternal with Err wrapping ctx.Err().
//
// A body larger than MaxPostBody, or an invalid URL, is KindInternal
// (ErrInvalidTarget). Result.FinalURL drops user info and query, so a token
// in the URL is not recorded.
func Post(ctx context.Context, c *Client, rawURL string, body []byte, header http.Header) Result {
	return send(ctx, c, http.MethodPost, rawURL, body, header)
}

// Purge asks a cache to drop what it holds of a URL: a request of method
// (PURGE for Squid and Varnish, or whatever the cache's purge location
// takes) to rawURL, without a body, through c — the same User-Agent,
// timeouts, redirect policy and retries as Post, whose classification it
// shares: any 2xx is KindOK; a 404 (the cache held nothing of it) is
// KindNotFound; a 405 or 403 (the cache does not let sentry purge) is
// http_status or forbidden.
func Purge(ctx context.Context, c *Client, method, rawURL string) Result {
	return send(ctx, c, method, rawURL, nil, nil)
}

// send is Post and Purge.
func send(ctx context.Context, c *Client, method, rawURL string, body []byte, header http.Header) Result {
	p := newProbe(ctx, c, false)
	if c == nil {
		return p.invalid("nil Client")
	}
	if err := p.parse(rawURL); err != nil {
		return p.invalid("%s", err.Error())
	}
	if !isToken(method) {
		return p.invalid("method %q is not an HTTP token", clip(method, 32))
	}
	if len(body) > MaxPostBody {
		return p.invalid("POST body of %d bytes exceeds %d", len(body), MaxPostBody)
	}
	if ctx.Err() != nil {
		return p.cancelled(nil)
	}
	if body == nil {
		body = []byte{}
	}
	hdr := make(http.Header, len(header)+2) // the caller's is not do's to keep
	p.ownOrigin = true
	for k, v := range header {
		k = http.CanonicalHeaderKey(k)
		hdr[k] = append([]string(nil), v...)
		p.ownHeaders = append(p.ownHeaders, k)
	}
	resp, err := p.do(method, hdr, body)
	if err != nil {
		return p.fail(err)
	}
	p.meta(resp)
	n, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, postDrainLimit))
	resp.Body.Close()
	p.res.Bytes = n
	if rerr != nil && p.parent.Err() != nil {
		return p.cancelled(rerr)
	}
	if code := resp.StatusCode; code < 200 || code > 299 {
		return p.status(code, encodingNote(resp.Header))
	}
	if rerr != nil {
		return p.set(KindOK, "HTTP %d; answer body broke after %d bytes (%s)", resp.StatusCode, n, innermost(rerr))
	}
	return p.set(KindOK, "")
}

// isToken reports whether s is an HTTP token (RFC 9110, 5.6.2), as a
// request method must be.
func isToken(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return r > 0x7e || r <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r)
	})
}
