package checks

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/rangeserver"
)

// The sampled file: 1 MiB in blocks of 16 KiB (64 blocks), 8 of them
// sampled per check.
const (
	sampleBlock = 16 << 10
	sampleK     = 8
)

var (
	sampleContent = func() []byte {
		b := make([]byte, 1<<20)
		seed := sha256.Sum256([]byte("sampled"))
		for i := 0; i < len(b); i += len(seed) {
			copy(b[i:], seed[:])
			seed = sha256.Sum256(seed[:])
		}
		return b
	}()
	sampleSum = hexSum(sha256.Sum256(sampleContent))
)

// digestsOf computes the block digests the master would give.
func digestsOf(b []byte, bs int64) Blocks {
	w := &blockWriter{size: bs, h: sha256.New()}
	w.Write(b)
	return Blocks{Size: bs, Digests: w.finish()}
}

func sampleTarget(u string) Target {
	return Target{URL: u + "/pub/big.bin", Size: int64(len(sampleContent)), Algo: "sha256", Hash: sampleSum}
}

// served answers body with http.ServeContent: ranges, multiple ranges
// (multipart/byteranges) and 416 as Go's own file server does.
func served(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Cache-Status", "HIT")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}
}

// ignoringRange answers every GET with the whole body (200).
func ignoringRange(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}
}

// corruptBlocks returns a copy of b with every block whose index i has
// (i*7)%10 < 3 changed: 30% of the blocks, the first and last among the
// good ones (so that only the random picks can find them).
func corruptBlocks(b []byte, bs int) []byte {
	c := bytes.Clone(b)
	n := (len(b) + bs - 1) / bs
	for i := 1; i < n-1; i++ {
		if (i*7)%10 < 3 {
			c[i*bs+bs/2] ^= 0x5a
		}
	}
	return c
}

func flipMiddle(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 1
	return c
}

func samplePick(t *testing.T, id string) []int {
	t.Helper()
	return NewSampler([]byte("checks tests")).Pick(id, BlockCount(int64(len(sampleContent)), sampleBlock), sampleK)
}

// manual answers with a hand-written multipart/byteranges body.
func manual(parts func(w http.ResponseWriter, size int)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "multipart/byteranges; boundary=XyZ")
		w.WriteHeader(http.StatusPartialContent)
		parts(w, len(sampleContent))
	}
}

func writePart(w http.ResponseWriter, start, end, total int, body []byte) {
	fmt.Fprintf(w, "\r\n--XyZ\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes %d-%d/%d\r\n\r\n", start, end, total)
	w.Write(body)
}

// shaped serves body as a server with behaviour b answers ranges.
func shaped(body []byte, b rangeserver.Behaviour) http.HandlerFunc {
	s := &rangeserver.Server{B: b, Files: map[string][]byte{"/pub/big.bin": body}}
	return s.ServeHTTP
}

// wholeWithoutRange answers a GET without Range with the whole file, and
// hands the others to h.
func wholeWithoutRange(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") == "" {
			ignoringRange(sampleContent)(w, r)
			return
		}
		h(w, r)
	}
}

// TestSample: whatever a server does with ranges, the copy is judged by
// its bytes — good copies pass (by sampling where the server answers
// ranges at all, in full where it does not), wrong ones are caught —
// and what the answers taught of the server is returned; an answer that
// cannot be read as ranges is never held against the copy.
func TestSample(t *testing.T) {
	blocks := digestsOf(sampleContent, sampleBlock)
	html := []byte("<!DOCTYPE html><html><body>" + strings.Repeat("Not here. ", len(sampleContent)/10))[:len(sampleContent)]
	pick := samplePick(t, "TestSample")
	if len(pick) != sampleK || pick[0] != 0 || pick[len(pick)-1] != blocks.Count()-1 {
		t.Fatalf("pick %v: want %d blocks, the first and the last among them", pick, sampleK)
	}
	asked := ranges(pick, sampleBlock, int64(len(sampleContent)))
	size := int64(len(sampleContent))
	corrupt := corruptBlocks(sampleContent, sampleBlock)
	lighttpd := rangeserver.Behaviour{MaxParts: 3, Coalesce: 1}
	varnish := rangeserver.Behaviour{RefuseMulti: true}
	apache := rangeserver.Behaviour{WholeAbove: 2}
	// Past 2 ranges, the limit is halved until the server answers.
	halved := len(asked)
	for halved > 2 {
		halved /= 2
	}
	const any = -1
	cases := []struct {
		name    string
		h       http.HandlerFunc
		kind    Kind
		status  int
		hashed  bool
		sampled int // blocks compared, or any
		detail  string
		learned RangeWay
	}{
		{"multipart answer", served(sampleContent), KindOK, 206, false, sampleK, "", RangeWay{}},
		{"30% of the blocks corrupted", served(corrupt), KindChecksumMismatch, 206, false, any, "differs", RangeWay{}},
		{"an HTML page of the same size", served(html), KindChecksumMismatch, 206, false, 1, "block 0 of 64", RangeWay{}},
		{"a truncated file", served(sampleContent[:len(sampleContent)-5000]), KindSizeMismatch, 206, false, any, "Content-Range size 1043576, want 1048576", RangeWay{}},
		{"another version, longer", served(append(bytes.Clone(sampleContent), "v2"...)), KindSizeMismatch, 206, false, any, "want 1048576", RangeWay{}},
		{"a mirror ignoring Range", ignoringRange(sampleContent), KindOK, 200, true, 0, "verified in full", RangeWay{InFull: true}},
		{"a mirror ignoring Range, one flipped byte", ignoringRange(flipMiddle(sampleContent)), KindChecksumMismatch, 200, true, 0, "sha256", RangeWay{InFull: true}},

		// lighttpd: the first 3 parts (it answers 10), touching ranges
		// merged: the rest asked again, 3 at a time.
		{"the first parts only", shaped(sampleContent, lighttpd), KindOK, 206, false, sampleK, "requests", RangeWay{MaxRanges: 3}},
		{"the first parts only, 30% corrupted", shaped(corrupt, lighttpd), KindChecksumMismatch, 206, false, any, "differs", RangeWay{}},
		{"the first parts only, an HTML page", shaped(html, lighttpd), KindChecksumMismatch, 206, false, 1, "block 0 of 64", RangeWay{}},
		{"the first range only", shaped(sampleContent, rangeserver.Behaviour{MaxParts: 1}), KindOK, 206, false, sampleK, "", RangeWay{MaxRanges: 1}},
		// Varnish: 416 with the file's size to several ranges.
		{"416 to several ranges", shaped(sampleContent, varnish), KindOK, 206, false, sampleK, "", RangeWay{MaxRanges: 1}},
		{"416 to several ranges, 30% corrupted", shaped(corrupt, varnish), KindChecksumMismatch, 206, false, any, "differs", RangeWay{MaxRanges: 1}},
		{"416 to several ranges, an HTML page", shaped(html, varnish), KindChecksumMismatch, 206, false, 1, "block 0 of 64", RangeWay{MaxRanges: 1}},
		{"416 to several ranges, a truncated file", shaped(sampleContent[:size-5000], varnish), KindSizeMismatch, 416, false, any, "Content-Range size 1043576", RangeWay{}},
		// Apache with MaxRanges 2: the whole file past 2 ranges, closed
		// unread; halved until answered.
		{"200 past 2 ranges", shaped(sampleContent, apache), KindOK, 206, false, sampleK, "", RangeWay{MaxRanges: halved}},
		{"a 206 of the whole file past 2 ranges", shaped(sampleContent, rangeserver.Behaviour{WholeAbove: 2, WholeAs206: true}), KindOK, 206, false, sampleK, "", RangeWay{MaxRanges: halved}},
		{"200 past 2 ranges, 30% corrupted", shaped(corrupt, apache), KindChecksumMismatch, 206, false, any, "differs", RangeWay{MaxRanges: halved}},
		// Ranges merged across the gaps, parts in another order.
		{"ranges coalesced into one part", shaped(sampleContent, rangeserver.Behaviour{Coalesce: size}), KindOK, 206, false, sampleK, "", RangeWay{MaxRanges: len(asked) / 2}},
		{"neighbouring ranges coalesced", shaped(sampleContent, rangeserver.Behaviour{Coalesce: 8 * sampleBlock}), KindOK, 206, false, sampleK, "", RangeWay{}},
		{"parts in reverse order", shaped(sampleContent, rangeserver.Behaviour{Reverse: true}), KindOK, 206, false, sampleK, "", RangeWay{}},
		{"coalesced, reversed, an HTML page", shaped(html, rangeserver.Behaviour{Coalesce: 8 * sampleBlock, Reverse: true}), KindChecksumMismatch, 206, false, any, "differs", RangeWay{}},
		{"one part from the first range asked to the last", func(w http.ResponseWriter, r *http.Request) {
			first, last := spanAsked(r.Header.Get("Range"))
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, size))
			w.Header().Set("Content-Length", strconv.FormatInt(last-first+1, 10))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(sampleContent[first : last+1])
		}, KindOK, 206, false, sampleK, "", RangeWay{MaxRanges: len(asked) / 2}}, // the first and last blocks: the whole file, closed unread
		// No range honoured: read in full.
		{"no range honoured", shaped(sampleContent, rangeserver.Behaviour{IgnoreRanges: true}), KindOK, 200, true, 0, "verified in full", RangeWay{InFull: true}},
		{"no range honoured, 30% corrupted", shaped(corrupt, rangeserver.Behaviour{IgnoreRanges: true}), KindChecksumMismatch, 200, true, 0, "sha256", RangeWay{InFull: true}},
		{"a 206 of the whole file to every range", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", size-1, size))
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(sampleContent)
		}, KindOK, 206, true, 0, "verified in full", RangeWay{InFull: true}},
		{"a range that was not asked", wholeWithoutRange(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 16384-32767/%d", size))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(sampleContent[16384:32768])
		}), KindOK, 200, true, 0, "verified in full", RangeWay{InFull: true}},
		{"a part longer than its range", wholeWithoutRange(manual(func(w http.ResponseWriter, total int) {
			r := asked[0]
			writePart(w, int(r.start), int(r.end), total, sampleContent[r.start:r.end+100])
		})), KindOK, 200, true, 0, "verified in full", RangeWay{InFull: true}},
		{"a part shorter than its range", wholeWithoutRange(manual(func(w http.ResponseWriter, total int) {
			r := asked[0]
			writePart(w, int(r.start), int(r.end), total, sampleContent[r.start:r.end-100])
			fmt.Fprint(w, "\r\n--XyZ--\r\n")
		})), KindOK, 200, true, 0, "verified in full", RangeWay{InFull: true}},
		{"no size in the part", wholeWithoutRange(manual(func(w http.ResponseWriter, total int) {
			fmt.Fprintf(w, "\r\n--XyZ\r\nContent-Range: bytes 0-16383/*\r\n\r\n")
		})), KindOK, 200, true, 0, "verified in full", RangeWay{InFull: true}},
		{"endless part headers", wholeWithoutRange(manual(func(w http.ResponseWriter, total int) {
			fmt.Fprint(w, "\r\n--XyZ\r\n")
			line := []byte("X-Junk: " + strings.Repeat("j", 1000) + "\r\n")
			for range 3000 {
				if _, err := w.Write(line); err != nil {
					return
				}
			}
		})), KindOK, 200, true, 0, "verified in full", RangeWay{InFull: true}},
		{"no boundary", wholeWithoutRange(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "multipart/byteranges")
			w.WriteHeader(http.StatusPartialContent)
		}), KindOK, 200, true, 0, "verified in full", RangeWay{InFull: true}},
		{"416 of another size", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes */10")
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		}, KindSizeMismatch, 416, false, any, "Content-Range size 10", RangeWay{}},
		{"404", status(404), KindNotFound, 404, false, any, "", RangeWay{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, tc.h)
			c, tr := newTestClient(t, nil)
			res, learned := Sample(t.Context(), c, sampleTarget(srv.URL), blocks, pick, RangeWay{})
			t.Logf("kind=%s status=%d bytes=%d sampled=%d/%d (%d bytes) attempts=%d learned=%+v detail=%q", res.Kind, res.Status, res.Bytes,
				res.Sampled, res.Blocks, res.SampledBytes, res.Attempts, learned, res.Detail)
			if res.Kind != tc.kind || res.Status != tc.status || res.Hashed != tc.hashed {
				t.Errorf("got %s %d hashed=%v, want %s %d hashed=%v (%s)", res.Kind, res.Status, res.Hashed, tc.kind, tc.status, tc.hashed, res.Detail)
			}
			if tc.sampled != any && res.Sampled != tc.sampled {
				t.Errorf("sampled %d blocks, want %d", res.Sampled, tc.sampled)
			}
			if !strings.Contains(res.Detail, tc.detail) {
				t.Errorf("detail %q lacks %q", res.Detail, tc.detail)
			}
			if res.Kind == KindOK && learned != tc.learned {
				t.Errorf("learned %+v, want %+v", learned, tc.learned)
			}
			if res.Kind == KindOK && !res.Hashed {
				if res.Blocks != blocks.Count() || res.Bytes != size || res.SampledBytes != int64(sampleK*sampleBlock) {
					t.Errorf("ok: blocks %d, bytes %d, sampled bytes %d; want %d, %d, %d", res.Blocks, res.Bytes, res.SampledBytes,
						blocks.Count(), size, sampleK*sampleBlock)
				}
			}
			if res.Kind.Failed() && res.Err == nil {
				t.Error("failure without an error")
			}
			tr.assertClosed(t)
		})
	}
}

// spanAsked is the first byte of the first range of a Range header and
// the last of its last.
func spanAsked(v string) (first, last int64) {
	rs := strings.Split(strings.TrimPrefix(v, "bytes="), ",")
	a, _, _ := strings.Cut(rs[0], "-")
	_, b, _ := strings.Cut(rs[len(rs)-1], "-")
	first, _ = strconv.ParseInt(a, 10, 64)
	last, _ = strconv.ParseInt(b, 10, 64)
	return first, last
}

// TestSampleAsksTheLearnedWay: a check asks as many ranges per request
// as was learned of the server, and reads a file in full at once from a
// server known not to honour ranges.
func TestSampleAsksTheLearnedWay(t *testing.T) {
	blocks := digestsOf(sampleContent, sampleBlock)
	pick := []int{0, 5, 10, 15, 20, 25, 30, 63}
	for _, tc := range []struct {
		way  RangeWay
		want []int // ranges per request
	}{
		{RangeWay{}, []int{8}},
		{RangeWay{MaxRanges: 3}, []int{3, 3, 2}},
		{RangeWay{MaxRanges: 1}, []int{1, 1, 1, 1, 1, 1, 1, 1}},
		{RangeWay{InFull: true}, []int{0}},
	} {
		t.Run(tc.way.String(), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var got []int
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				n := 0
				if v := r.Header.Get("Range"); v != "" {
					n = strings.Count(v, ",") + 1
				}
				got = append(got, n)
				mu.Unlock()
				served(sampleContent)(w, r)
			})
			c, tr := newTestClient(t, nil)
			res, learned := Sample(t.Context(), c, sampleTarget(srv.URL), blocks, pick, tc.way)
			if res.Kind != KindOK || learned.Known() || res.Attempts != len(tc.want) {
				t.Errorf("%s (%s), learned %+v, %d attempts", res.Kind, res.Detail, learned, res.Attempts)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("ranges per request %v, want %v", got, tc.want)
			}
			tr.assertClosed(t)
		})
	}
}

// TestSampleBytesStayBounded: whatever a server answers, a check reads no
// more than the file's size and its part headers from its sampled
// answers, and the file once in full when it must.
func TestSampleBytesStayBounded(t *testing.T) {
	blocks := digestsOf(sampleContent, sampleBlock)
	pick := samplePick(t, "bounded")
	size := int64(len(sampleContent))
	var sent atomic.Int64
	junk := bytes.Repeat([]byte("j"), 64<<10)
	srv := serve(t, wholeWithoutRange(manual(func(w http.ResponseWriter, total int) {
		fmt.Fprintf(w, "\r\n--XyZ\r\nContent-Range: bytes 0-16383/%d\r\n\r\n", total)
		for range 1000 { // 64 MiB of a part that never ends
			n, err := w.Write(junk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	})))
	c, _ := newTestClient(t, nil)
	res, learned := Sample(t.Context(), c, sampleTarget(srv.URL), blocks, pick, RangeWay{})
	if res.Kind != KindOK || !res.Hashed || !learned.InFull {
		t.Errorf("%s hashed=%v learned %+v (%s); want verified in full", res.Kind, res.Hashed, learned, res.Detail)
	}
	// What the server managed to send before the connections were
	// closed: the bound, and what sockets buffer.
	if n := sent.Load(); n > 2*size+16<<20 {
		t.Errorf("the server sent %d bytes of junk for a file of %d", n, size)
	}
}

func TestNextStep(t *testing.T) {
	for _, tc := range []struct {
		asked, covered int
		shape          answerShape
		want           rangeStep
	}{
		{32, 32, answerParts, rangeStep{limit: 32}},       // every range answered
		{32, 10, answerParts, rangeStep{limit: 10}},       // lighttpd: the first 10
		{32, 0, answerParts, rangeStep{limit: 16}},        // parts, none asked
		{32, 0, answerRefused, rangeStep{limit: 16}},      // Varnish: 416
		{32, 0, answerWhole, rangeStep{limit: 16}},        // Apache MaxRanges: 200, closed unread
		{32, 5, answerBroken, rangeStep{limit: 16}},       // broken after 5 ranges: not a limit to learn
		{32, 32, answerBroken, rangeStep{limit: 32}},      // broken after the last range asked
		{3, 0, answerRefused, rangeStep{limit: 1}},        // halved down to one
		{2, 1, answerParts, rangeStep{limit: 1}},          // one of two: one at a time
		{1, 1, answerParts, rangeStep{limit: 1}},          // the one range
		{1, 0, answerWhole, rangeStep{bodyInFull: true}},  // the whole file to one range: read it
		{1, 0, answerRefused, rangeStep{getInFull: true}}, // 416 to one range
		{1, 0, answerBroken, rangeStep{getInFull: true}},  // unreadable to one range
		{1, 0, answerParts, rangeStep{getInFull: true}},   // a part not asked to one range
		{0, 0, answerParts, rangeStep{getInFull: true}},   // nothing asked (never)
	} {
		if got := nextStep(tc.asked, tc.covered, tc.shape); got != tc.want {
			t.Errorf("asked %d, covered %d, %s: %+v, want %+v", tc.asked, tc.covered, tc.shape, got, tc.want)
		}
	}
}

func TestRangeWayMerge(t *testing.T) {
	for _, tc := range []struct {
		known, learned, want RangeWay
	}{
		{RangeWay{}, RangeWay{}, RangeWay{}},
		{RangeWay{}, RangeWay{MaxRanges: 10}, RangeWay{MaxRanges: 10}},
		{RangeWay{MaxRanges: 10}, RangeWay{}, RangeWay{MaxRanges: 10}},
		{RangeWay{MaxRanges: 10}, RangeWay{MaxRanges: 1}, RangeWay{MaxRanges: 1}},
		{RangeWay{MaxRanges: 1}, RangeWay{MaxRanges: 10}, RangeWay{MaxRanges: 1}},
		{RangeWay{MaxRanges: 10}, RangeWay{InFull: true}, RangeWay{InFull: true}},
		{RangeWay{InFull: true}, RangeWay{MaxRanges: 3}, RangeWay{InFull: true}},
	} {
		if got := tc.known.Merge(tc.learned); got != tc.want {
			t.Errorf("%+v merged with %+v: %+v, want %+v", tc.known, tc.learned, got, tc.want)
		}
	}
}

func TestSampleRefusesBadInput(t *testing.T) {
	blocks := digestsOf(sampleContent, sampleBlock)
	c, _ := newTestClient(t, nil)
	tg := sampleTarget("http://127.0.0.1:1")
	for name, tc := range map[string]struct {
		b    Blocks
		pick []int
	}{
		"no pick":           {blocks, nil},
		"unsorted pick":     {blocks, []int{3, 1}},
		"pick out of range": {blocks, []int{64}},
		"wrong digests":     {Blocks{Size: sampleBlock, Digests: blocks.Digests[:32]}, []int{0}},
		"no block size":     {Blocks{Digests: blocks.Digests}, []int{0}},
	} {
		if res, _ := Sample(t.Context(), c, tg, tc.b, tc.pick, RangeWay{}); res.Kind != KindInternal {
			t.Errorf("%s: %s, want internal", name, res.Kind)
		}
	}
}

func TestSampler(t *testing.T) {
	s := NewSampler([]byte("seed"))
	a, b := s.Pick("run 1 mirror 2 file x", 1024, 32), s.Pick("run 1 mirror 2 file x", 1024, 32)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("one seed, one id: %v and %v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(s.Pick("run 2 mirror 2 file x", 1024, 32)) {
		t.Error("another check picks the same blocks")
	}
	if fmt.Sprint(a) == fmt.Sprint(NewSampler([]byte("other")).Pick("run 1 mirror 2 file x", 1024, 32)) {
		t.Error("another seed picks the same blocks")
	}
	if fmt.Sprint(NewSampler(nil).Pick("x", 1024, 32)) == fmt.Sprint(NewSampler(nil).Pick("x", 1024, 32)) {
		t.Error("two random seeds pick the same blocks")
	}
	if got := s.Pick("x", 5, 32); fmt.Sprint(got) != "[0 1 2 3 4]" {
		t.Errorf("k ≥ n: %v, want every block", got)
	}
	if got := s.Pick("x", 1, 32); fmt.Sprint(got) != "[0]" {
		t.Errorf("one block: %v", got)
	}
	// Every middle block is picked about as often as the others.
	counts := make([]int, 1024)
	const checks = 3000
	for i := range checks {
		p := s.Pick(strconv.Itoa(i), 1024, 32)
		if len(p) != 32 || p[0] != 0 || p[31] != 1023 {
			t.Fatalf("pick %v: want 32 blocks with the first and the last", p)
		}
		for j, v := range p {
			if j > 0 && v <= p[j-1] {
				t.Fatalf("pick %v is not ascending and distinct", p)
			}
			counts[v]++
		}
	}
	mean := float64(checks*30) / 1022
	for v := 1; v < 1023; v++ {
		if c := float64(counts[v]); c < 0.4*mean || c > 1.6*mean {
			t.Errorf("block %d picked %v times, mean %.0f", v, c, mean)
		}
	}
}

// TestTouch: a one-byte range primes a cache for one byte of traffic; a
// server that answers it otherwise does not honour ranges — not a
// failure — and what it sends is read no further than a few bytes (a
// 200, the whole file anyway, is verified in full).
func TestTouch(t *testing.T) {
	size := int64(len(sampleContent))
	cases := []struct {
		name     string
		h        http.HandlerFunc
		kind     Kind
		status   int
		hashed   bool
		honoured bool
		bytes    int64
		detail   string
	}{
		{"one byte", served(sampleContent), KindOK, 206, false, true, size, ""},
		{"another size", served(sampleContent[:1000]), KindSizeMismatch, 206, false, true, 1000, "Content-Range size 1000"},
		{"the range ignored", ignoringRange(sampleContent), KindOK, 200, true, false, size, "verified in full"},
		{"the range ignored, one flipped byte", ignoringRange(flipMiddle(sampleContent)), KindChecksumMismatch, 200, true, false, size, "sha256"},
		{"another range", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-9/%d", size))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(sampleContent[:10])
		}, KindOK, 206, false, false, size, "does not honour ranges"},
		{"more than one byte", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-0/%d", size))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(sampleContent[:10])
		}, KindOK, 206, false, false, size, "more than the one byte"},
		{"the whole file as a 206 (busybox)", shaped(sampleContent, rangeserver.Behaviour{ZeroEndWhole: true}), KindOK, 206, false, false, size, "not read further"},
		{"one range of a server refusing several (Varnish)", shaped(sampleContent, rangeserver.Behaviour{RefuseMulti: true}), KindOK, 206, false, true, size, ""},
		{"416 to one byte", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		}, KindOK, 416, false, false, -1, "does not honour ranges"},
		{"416 of another size", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes */10")
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		}, KindSizeMismatch, 416, false, true, 10, "Content-Range size 10"},
		{"404", status(404), KindNotFound, 404, false, false, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, tc.h)
			c, tr := newTestClient(t, nil)
			res, honoured := Touch(t.Context(), c, sampleTarget(srv.URL))
			if res.Kind != tc.kind || res.Status != tc.status || res.Hashed != tc.hashed || honoured != tc.honoured || res.Bytes != tc.bytes ||
				!strings.Contains(res.Detail, tc.detail) {
				t.Errorf("got %s %d hashed=%v honoured=%v bytes=%d %q; want %s %d hashed=%v honoured=%v bytes=%d %q", res.Kind, res.Status, res.Hashed,
					honoured, res.Bytes, res.Detail, tc.kind, tc.status, tc.hashed, tc.honoured, tc.bytes, tc.detail)
			}
			tr.assertClosed(t)
		})
	}
}

// TestTouchReadsNoFurther: a one-byte range answered with the whole file
// (busybox httpd) is not read: the server writes what the sockets
// between take, no more.
func TestTouchReadsNoFurther(t *testing.T) {
	big := bytes.Repeat(sampleContent, 64) // 64 MiB
	var sent atomic.Int64
	rs := &rangeserver.Server{B: rangeserver.Behaviour{ZeroEndWhole: true}, Files: map[string][]byte{"/pub/big.bin": big}}
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		rs.ServeHTTP(&countingWriter{ResponseWriter: w, n: &sent}, r)
	})
	c, tr := newTestClient(t, nil)
	tg := Target{URL: srv.URL + "/pub/big.bin", Size: int64(len(big))}
	res, honoured := Touch(t.Context(), c, tg)
	if res.Kind != KindOK || honoured || res.Hashed {
		t.Errorf("%s honoured=%v hashed=%v (%s); want ok, not honoured, not read", res.Kind, honoured, res.Hashed, res.Detail)
	}
	tr.assertClosed(t)
	srv.Close() // waits for the handler, whose writes fail once the connection is gone
	if n := sent.Load(); n >= int64(len(big))/2 {
		t.Errorf("%d of %d bytes sent for a one-byte range: the answer was read", n, len(big))
	}
}

// countingWriter counts the body bytes a handler wrote.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

// TestTouchAt: the byte asked is the one at the offset; outside the file,
// sentry's own input is wrong.
func TestTouchAt(t *testing.T) {
	size := int64(len(sampleContent))
	var got []string
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Range"))
		served(sampleContent)(w, r)
	})
	c, _ := newTestClient(t, nil)
	if res, honoured := TouchAt(t.Context(), c, sampleTarget(srv.URL), size-1); res.Kind != KindOK || !honoured || res.Cache != CacheHit {
		t.Errorf("the last byte: %s honoured=%v cache %s (%s)", res.Kind, honoured, res.Cache, res.Detail)
	}
	for _, off := range []int64{-1, size} {
		if res, _ := TouchAt(t.Context(), c, sampleTarget(srv.URL), off); res.Kind != KindInternal {
			t.Errorf("byte %d: %s, want internal", off, res.Kind)
		}
	}
	if want := fmt.Sprintf("bytes=%d-%d", size-1, size-1); len(got) != 1 || got[0] != want {
		t.Errorf("asked %q, want one request for %s", got, want)
	}
}

func TestDigest(t *testing.T) {
	srv := serve(t, ignoringRange(sampleContent))
	c, tr := newTestClient(t, nil)
	b, res := Digest(t.Context(), c, sampleTarget(srv.URL), 10000) // a short last block
	want := digestsOf(sampleContent, 10000)
	if res.Kind != KindOK || !res.Hashed || b.Size != 10000 || !bytes.Equal(b.Digests, want.Digests) || b.Count() != 105 {
		t.Errorf("digest: %s %q, %d blocks of %d", res.Kind, res.Detail, b.Count(), b.Size)
	}
	bad := serve(t, ignoringRange(corruptBlocks(sampleContent, sampleBlock)))
	b, res = Digest(t.Context(), c, sampleTarget(bad.URL), sampleBlock)
	if res.Kind != KindChecksumMismatch || b.Count() != 0 {
		t.Errorf("a master copy that is not the manifest's: %s, %d blocks", res.Kind, b.Count())
	}
	tr.assertClosed(t)
}

func TestCacheWordOf(t *testing.T) {
	for _, tc := range []struct {
		h    map[string]string
		want CacheWord
	}{
		{map[string]string{}, CacheSilent},
		{map[string]string{"X-Cache-Status": "HIT"}, CacheHit},
		{map[string]string{"X-Cache-Status": "MISS"}, CacheMiss},
		{map[string]string{"X-Cache-Status": "EXPIRED"}, CacheMiss},
		{map[string]string{"X-Cache": "MISS from edge, HIT from squid.example"}, CacheHit},
		{map[string]string{"X-Cache": "TCP_MISS from squid"}, CacheMiss},
		{map[string]string{"Cache-Status": "Origin; fwd=miss, ExampleCache; hit"}, CacheHit},
		{map[string]string{"Cache-Status": "ExampleCache; fwd=uri-miss; stored"}, CacheMiss},
		{map[string]string{"Age": "12"}, CacheHit},
		{map[string]string{"Age": "0"}, CacheSilent},
		{map[string]string{"X-Cache-Status": "MISS", "Age": "3"}, CacheMiss},
		{map[string]string{"X-Varnish": "32770 3", "Age": "0"}, CacheHit},
		{map[string]string{"X-Varnish": "2", "Age": "0"}, CacheMiss},
		{map[string]string{"X-Varnish": "2", "X-Cache": "HIT"}, CacheHit},
	} {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		if got := CacheWordOf(h); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.h, got, tc.want)
		}
	}
}
