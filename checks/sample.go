package checks

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	mrand "math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Sampler chooses the blocks a sampled verification reads. Its picks are
// random per check and, for one seed, reproducible: Pick derives them
// from the seed and the check's id. A mirror must not be able to tell
// which blocks the next check reads, so outside tests the seed is secret
// and random (NewSampler(nil)).
type Sampler struct {
	key [32]byte
}

// NewSampler returns a sampler with seed (tests pass a fixed one, so that
// their picks are the same every time); a nil or empty seed means a
// random one from crypto/rand.
func NewSampler(seed []byte) *Sampler {
	s := &Sampler{}
	if len(seed) == 0 {
		if _, err := rand.Read(s.key[:]); err != nil {
			panic(fmt.Sprintf("checks: no randomness for the sampler: %v", err)) // crypto/rand does not fail on Linux
		}
		return s
	}
	s.key = sha256.Sum256(seed)
	return s
}

// Pick returns k distinct block indices of a file of n blocks, in
// ascending order, for the check named id: the first and the last block
// always, the others uniformly at random among the rest. When k >= n it
// returns every block.
func (s *Sampler) Pick(id string, n, k int) []int {
	if n <= 0 || k <= 0 {
		return nil
	}
	if k >= n {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return all
	}
	out := []int{0}
	if k >= 2 {
		out = append(out, n-1)
	}
	mac := hmac.New(sha256.New, s.key[:])
	mac.Write([]byte(id))
	var seed [32]byte
	copy(seed[:], mac.Sum(nil))
	rng := mrand.New(mrand.NewChaCha8(seed))
	// Floyd's algorithm: k-2 distinct indices of the n-2 middle blocks
	// (1 .. n-2), each set of them equally likely.
	m := n - 2
	chosen := make(map[int]bool, k)
	for j := m - (k - len(out)); j < m; j++ {
		v := rng.IntN(j + 1)
		if chosen[v] {
			v = j
		}
		chosen[v] = true
		out = append(out, v+1)
	}
	sort.Ints(out)
	return out
}

// byteRange is an inclusive range of byte offsets.
type byteRange struct{ start, end int64 }

// ranges merges picked blocks into byte ranges: adjacent blocks make one.
func ranges(pick []int, blockSize, size int64) []byteRange {
	var out []byteRange
	for _, b := range pick {
		start, end := int64(b)*blockSize, min(int64(b+1)*blockSize, size)-1
		if n := len(out); n > 0 && out[n-1].end+1 == start {
			out[n-1].end = end
			continue
		}
		out = append(out, byteRange{start, end})
	}
	return out
}

func rangeHeader(rs []byteRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = strconv.FormatInt(r.start, 10) + "-" + strconv.FormatInt(r.end, 10)
	}
	return "bytes=" + strings.Join(parts, ",")
}

// Bounds of a sampled answer beyond the blocks themselves: multipart part
// headers and boundaries.
const (
	partOverhead = 1 << 10
	bodyOverhead = 4 << 10
)

// Sample verifies a file by its size and some of its blocks: one GET
// asking for the picked blocks (b's indices, ascending and distinct; see
// Sampler.Pick) with a Range header, adjacent blocks merged into one
// range. Every block read is hashed as it streams in and compared with
// b's digest of it, the master's; nothing is held in memory but the
// current block's hash.
//
// Classification:
//   - 206, one part or multipart/byteranges: every part's Content-Range
//     must start where a range asked starts and end where one ends (a
//     server may merge ranges, RFC 9110), cover what was asked once, and
//     give the file's size: another size is size_mismatch; a range not
//     asked, a part missing, no size ("*") or no boundary is http_status
//     (the mirror answered something else than what was asked: a failure,
//     never a pass). A block whose digest differs is checksum_mismatch
//     (Detail names the block). A part longer than its range is
//     too_large; one that ends early, or a transfer that breaks,
//     truncated; a body that stalls, timeout. The whole answer is bounded
//     by the file's size and a few KiB of part headers.
//   - 200: the mirror ignores Range and sends the whole file: it is
//     verified in full, as Verify does (Hashed set, t.Size+1 bytes at
//     most).
//   - 416: its Content-Range size, when not the file's, is size_mismatch.
//   - Anything else as Verify (not_found, forbidden, http_status, network
//     failures).
//
// On KindOK (206) Sampled is len(pick), Blocks b.Count(), Bytes t.Size
// (the size the mirror reported) and SampledBytes the bytes compared.
func Sample(ctx context.Context, c *Client, t Target, b Blocks, pick []int) Result {
	p, h, want, res, ok := beginVerify(ctx, c, t)
	if !ok {
		return res
	}
	n := b.Count()
	switch {
	case t.Size == 0:
		return p.invalid("an empty file has no block to sample")
	case b.Size <= 0 || len(b.Digests)%BlockDigestSize != 0:
		return p.invalid("block digests of %d bytes for blocks of %d bytes", len(b.Digests), b.Size)
	case n != BlockCount(t.Size, b.Size):
		return p.invalid("%d block digests for a file of %d blocks", n, BlockCount(t.Size, b.Size))
	case len(pick) == 0:
		return p.invalid("no block picked")
	}
	for i, v := range pick {
		if v < 0 || v >= n || (i > 0 && v <= pick[i-1]) {
			return p.invalid("picked blocks are not distinct ascending indices below %d", n)
		}
	}
	p.res.Blocks = n
	rs := ranges(pick, b.Size, t.Size)
	resp, note, res, ok := p.getRange(t, rangeHeader(rs), h, want)
	if !ok {
		return res
	}
	defer resp.Body.Close() // not drained: a sampled answer is not read past what was asked
	chk := &blockCheck{b: b, size: t.Size, want: pick, cur: -1, h: sha256.New()}
	ans := &answer{p: p, t: t, asked: rs, covered: make([]bool, len(rs)), chk: chk, note: note}
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "multipart/byteranges" {
		if r, ok := ans.judge(resp.Header.Get("Content-Range")); !ok {
			return r
		}
		if !ans.done() {
			return ans.fail(KindHTTPStatus, false, "206 answered bytes %d-%d, which is not what was asked (%s)",
				ans.last.start, ans.last.end, clip(rangeHeader(rs), 120))
		}
		if cl := resp.ContentLength; cl >= 0 && cl != ans.last.end-ans.last.start+1 {
			return ans.fail(KindTooLarge, cl < ans.last.end-ans.last.start+1,
				"Content-Length %d for Content-Range bytes %d-%d", cl, ans.last.start, ans.last.end)
		}
		if r, ok := ans.read(resp.Body); !ok {
			return r
		}
	} else {
		boundary := params["boundary"]
		if boundary == "" {
			return p.set(KindHTTPStatus, "206 multipart/byteranges without a boundary%s", note)
		}
		mr := multipart.NewReader(&limitedBody{rc: resp.Body, left: t.Size + int64(len(rs))*partOverhead + bodyOverhead}, boundary)
		for !ans.done() {
			part, err := mr.NextRawPart()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return p.set(KindHTTPStatus, "206 answered %s of the %d ranges asked%s", ans.coveredText(), len(rs), note)
				}
				return ans.broken(err)
			}
			if r, ok := ans.judge(part.Header.Get("Content-Range")); !ok {
				return r
			}
			if r, ok := ans.read(part); !ok {
				return r
			}
		}
	}
	if chk.checked != len(pick) {
		return p.set(KindInternal, "compared %d of %d picked blocks", chk.checked, len(pick)) // the coverage above makes this unreachable
	}
	p.res.Bytes = t.Size
	p.res.Sampled, p.res.SampledBytes = chk.checked, chk.bytes
	return p.set(KindOK, "")
}

// getRange GETs t with the Range header rng and settles what every
// answer but a 206 says: a 200 (the mirror ignored Range) is verified in
// full through h, a 416 judged by its size, anything else as Verify. With
// ok it returns the 206, whose body the caller reads and closes, and the
// note of its Content-Encoding.
func (p *probe) getRange(t Target, rng string, h hash.Hash, want string) (resp *http.Response, note string, res Result, ok bool) {
	if p.parent.Err() != nil {
		return nil, "", p.cancelled(nil), false
	}
	resp, err := p.do(http.MethodGet, http.Header{"Range": {rng}}, nil)
	if err != nil {
		return nil, "", p.fail(err), false
	}
	p.meta(resp)
	note = encodingNote(resp.Header)
	switch resp.StatusCode {
	case http.StatusPartialContent:
		return resp, note, Result{}, true
	case http.StatusOK:
		p.res.Blocks = 0
		return nil, "", inFull(p.hashBody(resp, t, h, want, nil, note)), false
	case http.StatusRequestedRangeNotSatisfiable:
		drainClose(resp.Body, drainLimit)
		return nil, "", p.unsatisfiable(resp, t, note), false
	}
	drainClose(resp.Body, drainLimit)
	return nil, "", p.status(resp.StatusCode, note), false
}

// inFull notes on a whole-file verification that the mirror ignored Range.
func inFull(r Result) Result {
	if r.Kind == KindOK {
		r.Detail = "the mirror ignored Range (200): verified in full"
	}
	return r
}

// unsatisfiable judges a 416: the file's size from its Content-Range.
func (p *probe) unsatisfiable(resp *http.Response, t Target, note string) Result {
	if total, ok := contentRangeTotal(resp.Header.Get("Content-Range")); ok && total != t.Size {
		p.res.Bytes = total
		return p.set(KindSizeMismatch, "Content-Range size %d, want %d%s", total, t.Size, note)
	}
	return p.status(resp.StatusCode, note)
}

// answer is a sampled answer being read: the ranges asked, which of them
// the parts so far covered, and the blocks compared.
type answer struct {
	p       *probe
	t       Target
	asked   []byteRange
	covered []bool
	ncov    int
	last    byteRange // the part being read
	chk     *blockCheck
	note    string
}

func (a *answer) done() bool { return a.ncov == len(a.asked) }

func (a *answer) coveredText() string { return strconv.Itoa(a.ncov) }

// fail ends the check with kind (KindTruncated instead when short).
func (a *answer) fail(kind Kind, short bool, format string, args ...any) Result {
	if short {
		kind = KindTruncated
	}
	a.p.res.Sampled, a.p.res.SampledBytes = a.chk.checked, a.chk.bytes
	return a.p.set(kind, "%s%s", fmt.Sprintf(format, args...), a.note)
}

// judge checks a part's Content-Range against what was asked; when ok is
// false, r is the result.
func (a *answer) judge(cr string) (r Result, ok bool) {
	s, e, total, valid := parseContentRange(cr)
	switch {
	case !valid:
		return a.fail(KindHTTPStatus, false, "206 with Content-Range %q", clip(cr, 80)), false
	case total >= 0 && total != a.t.Size:
		a.p.res.Bytes = total
		return a.fail(KindSizeMismatch, false, "Content-Range size %d, want %d", total, a.t.Size), false
	case total < 0:
		return a.fail(KindHTTPStatus, false, "206 without the file's size (Content-Range %q)", clip(cr, 80)), false
	}
	i := sort.Search(len(a.asked), func(i int) bool { return a.asked[i].start >= s })
	j := i
	for j < len(a.asked) && a.asked[j].end < e {
		j++
	}
	if i == len(a.asked) || a.asked[i].start != s || j == len(a.asked) || a.asked[j].end != e {
		return a.fail(KindHTTPStatus, false, "206 answered bytes %d-%d, which is not what was asked (%s)", s, e,
			clip(rangeHeader(a.asked), 120)), false
	}
	for k := i; k <= j; k++ {
		if a.covered[k] {
			return a.fail(KindHTTPStatus, false, "206 answered bytes %d-%d twice", a.asked[k].start, a.asked[k].end), false
		}
		a.covered[k] = true
		a.ncov++
	}
	a.last = byteRange{s, e}
	return Result{}, true
}

// read reads the part of a.last from r, comparing its picked blocks.
func (a *answer) read(r io.Reader) (Result, bool) {
	want := a.last.end - a.last.start + 1
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	lr := io.LimitReader(r, want+1)
	pos, n := a.last.start, int64(0)
	for {
		m, err := lr.Read(buf)
		if m > 0 {
			if n+int64(m) > want {
				return a.fail(KindTooLarge, false, "a part longer than its Content-Range bytes %d-%d", a.last.start, a.last.end), false
			}
			if bad := a.chk.feed(pos, buf[:m]); bad >= 0 {
				return a.mismatch(bad), false
			}
			pos += int64(m)
			n += int64(m)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if n == want {
				break // all of it came; the boundary after it is the next part's business
			}
			return a.broken(err), false
		}
	}
	if n < want {
		return a.fail(KindTruncated, false, "the part of bytes %d-%d ended after %d of %d bytes", a.last.start, a.last.end, n, want), false
	}
	return Result{}, true
}

// broken classifies a read that failed: a stall, a broken transfer, or
// an answer past its bound.
func (a *answer) broken(err error) Result {
	p := a.p
	if p.parent.Err() != nil {
		return p.cancelled(err)
	}
	p.res.Err = err
	p.res.Sampled, p.res.SampledBytes = a.chk.checked, a.chk.bytes
	switch {
	case errors.Is(err, ErrBodyTooLarge): // a multipart answer past its bound
		return p.set(KindTooLarge, "multipart answer larger than the blocks asked and their part headers%s", a.note)
	case errors.Is(err, ErrBodyIdle):
		return p.set(KindTimeout, "no body bytes or under %d for %s while reading sampled blocks%s", MinBodyProgress, p.c.opts.BodyIdleTimeout, a.note)
	}
	if k, d := classifyError(err); k == KindTimeout {
		return p.set(KindTimeout, "%s while reading sampled blocks%s", d, a.note)
	}
	return p.set(KindTruncated, "sampled answer broke after %d of %d blocks (%s)%s", a.chk.checked, len(a.chk.want), innermost(err), a.note)
}

// mismatch reports the block whose digest differs.
func (a *answer) mismatch(bad int) Result {
	c := a.chk
	start, end := int64(bad)*c.b.Size, min(int64(bad+1)*c.b.Size, c.size)-1
	want := hex.EncodeToString(c.b.digest(bad))
	return a.fail(KindChecksumMismatch, false, "block %d of %d (bytes %d-%d) differs: sha256 %s…, want %s… (%d of %d sampled blocks read)",
		bad, c.b.Count(), start, end, hex.EncodeToString(c.got)[:hashPrefixLen], want[:hashPrefixLen], c.checked, len(c.want))
}

// blockCheck hashes the picked blocks of the bytes it is fed and compares
// each, once complete, with the master's digest.
type blockCheck struct {
	b       Blocks
	size    int64
	want    []int // picked blocks, ascending
	cur     int   // the block being hashed, -1 for none
	h       hash.Hash
	filled  int64 // bytes of cur hashed so far
	checked int
	bytes   int64
	got     []byte // the digest of the block that differed
}

func (c *blockCheck) picked(b int) bool {
	i := sort.SearchInts(c.want, b)
	return i < len(c.want) && c.want[i] == b
}

// feed takes p, the bytes at file offset pos. It returns the block whose
// digest differs, or -1.
func (c *blockCheck) feed(pos int64, p []byte) int {
	for len(p) > 0 {
		b := int(pos / c.b.Size)
		blockEnd := min(int64(b+1)*c.b.Size, c.size)
		take := min(int64(len(p)), blockEnd-pos)
		if c.picked(b) {
			if c.cur != b {
				c.cur, c.filled = b, 0
				c.h.Reset()
			}
			c.h.Write(p[:take])
			c.filled += take
			if pos+take == blockEnd {
				c.got = c.h.Sum(c.got[:0])
				c.checked++
				c.bytes += c.filled
				c.cur = -1
				if subtle.ConstantTimeCompare(c.got, c.b.digest(b)) != 1 {
					return b
				}
			}
		}
		pos += take
		p = p[take:]
	}
	return -1
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*":
// total -1).
func parseContentRange(v string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	s, e, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err error
	if start, err = strconv.ParseInt(strings.TrimSpace(s), 10, 64); err != nil || start < 0 {
		return 0, 0, 0, false
	}
	if end, err = strconv.ParseInt(strings.TrimSpace(e), 10, 64); err != nil || end < start {
		return 0, 0, 0, false
	}
	total = -1
	if t := strings.TrimSpace(tot); t != "*" {
		if total, err = strconv.ParseInt(t, 10, 64); err != nil || total <= end {
			return 0, 0, 0, false
		}
	}
	return start, end, total, true
}

// Touch asks for the first byte of a file ("Range: bytes=0-0"): through a
// pull-through cache that keeps what it fetches for a range (nginx
// proxy_cache does), this primes the cache for one byte of traffic.
//
//   - 206 with Content-Range bytes 0-0/SIZE: KindOK (not verified:
//     Hashed false), or size_mismatch when SIZE is not t.Size; another
//     range is http_status, more than one byte too_large.
//   - 200: the range was ignored and the whole file comes: it is verified
//     in full, as Verify does (Hashed set on a match).
//   - 416: its Content-Range size, when not the file's, is size_mismatch.
//   - Anything else as Verify.
//
// Bytes is the size the mirror reported (the body bytes read on a 200).
func Touch(ctx context.Context, c *Client, t Target) Result {
	p, h, want, res, ok := beginVerify(ctx, c, t)
	if !ok {
		return res
	}
	if t.Size == 0 {
		return p.invalid("an empty file has no first byte to ask for")
	}
	resp, note, res, ok := p.getRange(t, "bytes=0-0", h, want)
	if !ok {
		return res
	}
	cr := resp.Header.Get("Content-Range")
	s, e, total, valid := parseContentRange(cr)
	switch {
	case valid && total >= 0 && total != t.Size:
		drainClose(resp.Body, rangeDrainLimit)
		p.res.Bytes = total
		return p.set(KindSizeMismatch, "Content-Range size %d, want %d%s", total, t.Size, note)
	case !valid || total < 0 || s != 0 || e != 0:
		drainClose(resp.Body, rangeDrainLimit)
		return p.set(KindHTTPStatus, "206 with Content-Range %q to a request for bytes=0-0%s", clip(cr, 80), note)
	}
	n, rerr := readBody(resp.Body, 2, nil)
	resp.Body.Close()
	switch {
	case n > 1:
		return p.set(KindTooLarge, "answered more than the one byte asked%s", note)
	case rerr != nil || n < 1:
		if rerr == nil {
			rerr = io.ErrUnexpectedEOF
		}
		return p.bodyFail(rerr, n, 1, resp.ContentLength, note)
	}
	p.res.Bytes = total
	return p.set(KindOK, "")
}
