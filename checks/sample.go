package checks

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash"
	mrand "math/rand/v2"
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

// Bounds of a sampled check beyond the blocks themselves: multipart part
// headers and boundaries, and the requests a check may make.
const (
	partOverhead = 1 << 10
	bodyOverhead = 4 << 10
	// extraRequests bounds the requests of a check past one per picked
	// block: the halvings of its limit (nextStep). Never reached by the
	// rules, a guard against a server that keeps them busy.
	extraRequests = 16
)

// Sample verifies a file by its size and some of its blocks: GETs asking
// for the picked blocks (b's indices, ascending and distinct; see
// Sampler.Pick) with a Range header, adjacent blocks merged into one
// range, as many ranges per request as way allows (every range in one
// request when nothing was learned). Every block read is hashed as it
// streams in and compared with b's digest of it, the master's; nothing is
// held in memory but the current block's hash.
//
// How a server answers ranges is a property of the server, never
// evidence against the copy: whatever the answer, the check ends in a
// verdict on the bytes. A block is compared when a part of an answer
// carries it whole, wherever the part is (parts in any order, coalesced,
// a part covering more than asked); the blocks left out are asked again.
// After each answer (nextStep, table-tested):
//   - parts covering every range asked: the next ranges, as many;
//   - a clean answer covering only the first N ranges (lighttpd answers
//     10): the rest, N per request;
//   - an answer covering none — a 416 giving the file's size (Varnish to
//     several ranges), a 200 or a 206 of the whole file (closed unread:
//     Apache with MaxRanges, nginx with max_ranges), parts not asked — or
//     one that cannot be read as ranges (no boundary, a part without the
//     file's size or longer or shorter than its Content-Range, parts past
//     the answer's bound): half as many ranges per request;
//   - the same to a single range: the server does not honour ranges, and
//     the file is verified in full, as Verify does (Hashed set; t.Size+1
//     bytes at most): from that answer when it is the whole file, else
//     with a GET without Range.
//
// The returned RangeWay is what the answers taught (the limit that
// worked, or InFull), to be merged into way (RangeWay.Merge) and kept
// for the next check of the mirror; the zero RangeWay when nothing new.
// A way with InFull reads the file in full at once.
//
// Verdicts: a Content-Range or 416 giving another size is size_mismatch;
// a block whose digest differs is checksum_mismatch (Detail names the
// block); a status but 206, 200 and 416 as Verify (not_found, forbidden,
// http_status); a body that stalls is timeout, a connection that fails
// as Verify. The answers of a check together are bounded by the file's
// size and a few KiB of part headers (past it, the file is read in
// full).
//
// On KindOK by sampling, Sampled is len(pick), Blocks b.Count(), Bytes
// t.Size (the size the mirror reported) and SampledBytes the bytes
// compared; Attempts counts every request.
func Sample(ctx context.Context, c *Client, t Target, b Blocks, pick []int, way RangeWay) (Result, RangeWay) {
	p, h, want, res, ok := beginVerify(ctx, c, t)
	if !ok {
		return res, RangeWay{}
	}
	n := b.Count()
	switch {
	case t.Size == 0:
		return p.invalid("an empty file has no block to sample"), RangeWay{}
	case b.Size <= 0 || len(b.Digests)%BlockDigestSize != 0:
		return p.invalid("block digests of %d bytes for blocks of %d bytes", len(b.Digests), b.Size), RangeWay{}
	case n != BlockCount(t.Size, b.Size):
		return p.invalid("%d block digests for a file of %d blocks", n, BlockCount(t.Size, b.Size)), RangeWay{}
	case len(pick) == 0:
		return p.invalid("no block picked"), RangeWay{}
	}
	for i, v := range pick {
		if v < 0 || v >= n || (i > 0 && v <= pick[i-1]) {
			return p.invalid("picked blocks are not distinct ascending indices below %d", n), RangeWay{}
		}
	}
	s := &sampling{p: p, t: t, h: h, want: want, chk: newBlockCheck(b, t.Size, pick)}
	s.left = t.Size + int64(len(ranges(pick, b.Size, t.Size)))*partOverhead + bodyOverhead
	if way.InFull {
		return s.getInFull("the server does not honour ranges (learned before)"), RangeWay{}
	}
	p.res.Blocks = n
	limit, lowered, requests := way.MaxRanges, false, 0
	for {
		pending := ranges(s.chk.pending(), b.Size, t.Size)
		if len(pending) == 0 {
			break
		}
		if requests == len(pick)+extraRequests {
			return s.getInFull(fmt.Sprintf("%d requests did not bring the sampled blocks", requests)), learnedLimit(limit, lowered)
		}
		asked := len(pending)
		if limit > 0 && limit < asked {
			asked = limit
		}
		requests++
		a := s.ask(pending[:asked])
		if a.final {
			return a.res, learnedLimit(limit, lowered)
		}
		covered := s.chk.covered(pending[:asked])
		step := nextStep(asked, covered, a.shape)
		if a.whole != nil && !step.bodyInFull {
			a.whole.Body.Close() // not read: the ranges are asked again, fewer at a time
		}
		switch {
		case step.bodyInFull:
			return s.hashWhole(a.whole, fmt.Sprintf("the server answered a single range with the whole file (%d)", a.whole.StatusCode)), RangeWay{InFull: true}
		case step.getInFull:
			return s.getInFull("the server answered a single range with " + a.shape.told(covered)), RangeWay{InFull: true}
		case step.limit < asked:
			if !lowered {
				s.why = fmt.Sprintf("the server answered %d ranges with %s", asked, a.shape.told(covered))
			}
			limit, lowered = step.limit, true
		}
	}
	p.res.Bytes = t.Size
	p.res.Sampled, p.res.SampledBytes = s.chk.ndone, s.chk.bytes
	if requests > 1 {
		if !lowered {
			return p.set(KindOK, "%d requests: %s", requests, way.String()), RangeWay{}
		}
		return p.set(KindOK, "%d requests: %s: %s", requests, s.why, RangeWay{MaxRanges: limit}), learnedLimit(limit, lowered)
	}
	return p.set(KindOK, ""), RangeWay{}
}

// learnedLimit is what a check that asked at most limit ranges per
// request learned: that limit, when it lowered it.
func learnedLimit(limit int, lowered bool) RangeWay {
	if !lowered {
		return RangeWay{}
	}
	return RangeWay{MaxRanges: limit}
}

// sampling is one sampled check in progress.
type sampling struct {
	p    *probe
	t    Target
	h    hash.Hash // the file's hash, for a verification in full
	want string
	chk  *blockCheck
	// left is what the check's answers may still bring, part headers
	// included.
	left int64
	// why is why the limit was first lowered.
	why string
}

// getInFull verifies the file in full with a GET without Range, as Verify
// does; why says why, in the Detail of a success.
func (s *sampling) getInFull(why string) Result {
	p := s.p
	if p.parent.Err() != nil {
		return p.cancelled(nil)
	}
	resp, err := p.do(http.MethodGet, nil, nil)
	if err != nil {
		return p.fail(err)
	}
	p.meta(resp)
	if resp.StatusCode != http.StatusOK {
		drainClose(resp.Body, drainLimit)
		return p.status(resp.StatusCode, encodingNote(resp.Header))
	}
	return s.hashWhole(resp, why)
}

// hashWhole verifies an answer carrying the whole file in full (and
// closes it); why says why, in the Detail of a success.
func (s *sampling) hashWhole(resp *http.Response, why string) Result {
	p := s.p
	p.res.Blocks, p.res.Sampled, p.res.SampledBytes = 0, 0, 0
	r := p.hashBody(resp, s.t, s.h, s.want, nil, encodingNote(resp.Header))
	if r.Kind == KindOK {
		r.Detail = why + ": verified in full"
	}
	return r
}
