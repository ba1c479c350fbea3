package checks

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// Touch asks for the first byte of a file ("Range: bytes=0-0"): through a
// pull-through cache that keeps what it fetches for a range (nginx
// proxy_cache, Varnish, Squid with range_offset_limit -1), this primes the
// cache for one byte of traffic. See TouchAt.
func Touch(ctx context.Context, c *Client, t Target) (res Result, honoured bool) {
	return TouchAt(ctx, c, t, 0)
}

// TouchAt asks for the byte of a file at offset off ("Range:
// bytes=off-off"): a one-byte prime (Touch), or a cheap way to read a
// cache's word on a file (Result.Cache) with a Range it was not asked
// before. honoured reports whether the server answered with that byte.
//
//   - 206 with Content-Range bytes off-off/SIZE and one byte: KindOK (not
//     verified: Hashed false), honoured; size_mismatch when SIZE is not
//     t.Size.
//   - 200: the range was ignored and the whole file comes: it is verified
//     in full, as Verify does (Hashed set on a match).
//   - Any other 206 (another range, the whole file as busybox httpd
//     answers bytes=0-0, more than one byte, no size), or a 416 giving the
//     file's size: the server does not honour the range. Not a failure:
//     KindOK, not verified, the body read no further than a few bytes.
//   - 416 giving another size: size_mismatch. Anything else as Verify.
//
// Bytes is the size the mirror reported (the body bytes read on a 200).
func TouchAt(ctx context.Context, c *Client, t Target, off int64) (res Result, honoured bool) {
	p, h, want, res, ok := beginVerify(ctx, c, t)
	if !ok {
		return res, false
	}
	switch {
	case t.Size == 0:
		return p.invalid("an empty file has no byte to ask for"), false
	case off < 0 || off >= t.Size:
		return p.invalid("byte %d is not in a file of %d bytes", off, t.Size), false
	case ctx.Err() != nil:
		return p.cancelled(nil), false
	}
	asked := fmt.Sprintf("bytes=%d-%d", off, off)
	resp, err := p.do(http.MethodGet, http.Header{"Range": {asked}}, nil)
	if err != nil {
		return p.fail(err), false
	}
	p.meta(resp)
	note := encodingNote(resp.Header)
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		r := p.hashBody(resp, t, h, want, nil, note)
		if r.Kind == KindOK {
			r.Detail = "the mirror ignored Range (200): verified in full"
		}
		return r, false
	case http.StatusRequestedRangeNotSatisfiable:
		drainClose(resp.Body, drainLimit)
		total, ok := contentRangeTotal(resp.Header.Get("Content-Range"))
		if ok && total != t.Size {
			p.res.Bytes = total
			return p.set(KindSizeMismatch, "Content-Range size %d, want %d%s", total, t.Size, note), true
		}
		p.res.Bytes = -1
		return p.set(KindOK, "the server does not honour ranges: 416 to %s%s", asked, note), false
	default:
		drainClose(resp.Body, drainLimit)
		return p.status(resp.StatusCode, note), false
	}
	cr := resp.Header.Get("Content-Range")
	s, e, total, valid := parseContentRange(cr)
	p.res.Bytes = -1
	if valid && total >= 0 {
		p.res.Bytes = total
	}
	if valid && total >= 0 && total != t.Size {
		drainClose(resp.Body, rangeDrainLimit)
		return p.set(KindSizeMismatch, "Content-Range size %d, want %d%s", total, t.Size, note), true
	}
	// At most a few bytes are read, whatever the answer carries.
	n, rerr := readBody(resp.Body, rangeDrainLimit, nil)
	resp.Body.Close()
	switch {
	case !valid || total < 0 || s != off || e != off:
		return p.set(KindOK, "the server does not honour ranges: 206 with Content-Range %q to %s; not read further%s", clip(cr, 80), asked, note), false
	case n > 1:
		return p.set(KindOK, "the server does not honour ranges: more than the one byte asked (%s); not read further%s", asked, note), false
	case rerr != nil || n < 1:
		if rerr == nil {
			rerr = io.ErrUnexpectedEOF
		}
		return p.bodyFail(rerr, n, 1, resp.ContentLength, note), true
	}
	return p.set(KindOK, ""), true
}
