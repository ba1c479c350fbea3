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
	"net/http"
	"strings"
)

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
		return p.set(KindTimeout, "%s, after %d of %d bytes%s", p.slowWords(err), n, want, note)
	}
	if k, d := classifyError(err); k == KindTimeout {
		return p.set(KindTimeout, "%s after %d of %d bytes%s", d, n, want, note)
	}
	if declared >= 0 {
		return p.set(KindTruncated, "body broke after %d of %d bytes (%s)%s", n, want, innermost(err), note)
	}
	return p.set(KindTruncated, "body broke after %d of %d bytes, no Content-Length (%s)%s", n, want, innermost(err), note)
}
