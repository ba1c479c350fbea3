package checks

import (
	"context"
	"io"
	"net/http"
)

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
