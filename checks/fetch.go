package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ErrBodyTooLarge is returned by the reader of FetchIfChanged when the body
// goes past the limit.
var ErrBodyTooLarge = errors.New("body larger than the limit")

// FetchIfChanged GETs rawURL through c (same User-Agent, timeouts, retries
// and redirect policy as the probers) for a document sentry reads itself,
// such as a release manifest, conditional on the validators a previous
// answer gave (etag, lastModified; "" for none): a 304 is KindUnchanged,
// with no body. On KindOK the caller reads and closes the returned body,
// which fails with ErrBodyTooLarge past limit bytes and with a timeout
// when the server stalls (BodyIdleTimeout). On any other kind the body is
// nil and Result says why, classified like the probers. The Result
// carries the answer's validators.
func FetchIfChanged(ctx context.Context, c *Client, rawURL string, limit int64, etag, lastModified string) (io.ReadCloser, Result) {
	p := newProbe(ctx, c, false)
	if c == nil {
		return nil, p.invalid("nil Client")
	}
	if err := p.parse(rawURL); err != nil {
		return nil, p.invalid("%s", err.Error())
	}
	if limit <= 0 {
		return nil, p.invalid("limit %d is not positive", limit)
	}
	if ctx.Err() != nil {
		return nil, p.cancelled(nil)
	}
	hdr, cond := conditional(Target{ETag: etag, LastModified: lastModified})
	resp, err := p.do(http.MethodGet, hdr, nil)
	if err != nil {
		return nil, p.fail(err)
	}
	p.meta(resp)
	if resp.StatusCode == http.StatusNotModified && cond {
		drainClose(resp.Body, drainLimit)
		return nil, p.set(KindUnchanged, "not modified")
	}
	if resp.StatusCode != http.StatusOK {
		drainClose(resp.Body, drainLimit)
		return nil, p.status(resp.StatusCode, encodingNote(resp.Header))
	}
	if resp.ContentLength > limit {
		drainClose(resp.Body, 0)
		return nil, p.set(KindTooLarge, "Content-Length %d exceeds the limit of %d bytes", resp.ContentLength, limit)
	}
	p.res.Bytes = resp.ContentLength
	return &limitedBody{rc: resp.Body, left: limit}, p.set(KindOK, "")
}

// limitedBody fails reads past its limit instead of silently stopping.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One more byte tells a body of exactly the limit from a longer one.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("%w", ErrBodyTooLarge)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
