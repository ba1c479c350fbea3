package checks

import (
	"context"
	"net/http"
	"strconv"
	"strings"
)

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
