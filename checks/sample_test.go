package checks

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
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

func TestSample(t *testing.T) {
	blocks := digestsOf(sampleContent, sampleBlock)
	html := []byte("<!DOCTYPE html><html><body>" + strings.Repeat("Not here. ", len(sampleContent)/10))[:len(sampleContent)]
	pick := samplePick(t, "TestSample")
	if len(pick) != sampleK || pick[0] != 0 || pick[len(pick)-1] != blocks.Count()-1 {
		t.Fatalf("pick %v: want %d blocks, the first and the last among them", pick, sampleK)
	}
	asked := ranges(pick, sampleBlock, int64(len(sampleContent)))
	size := int64(len(sampleContent))
	cases := []struct {
		name    string
		h       http.HandlerFunc
		kind    Kind
		status  int
		hashed  bool
		sampled int // blocks compared, when the kind says so
		detail  string
	}{
		{"multipart answer", served(sampleContent), KindOK, 206, false, sampleK, ""},
		{"30% of the blocks corrupted", served(corruptBlocks(sampleContent, sampleBlock)), KindChecksumMismatch, 206, false, -1, "differs"},
		{"an HTML page of the same size", served(html), KindChecksumMismatch, 206, false, 1, "block 0 of 64"},
		{"a truncated file", served(sampleContent[:len(sampleContent)-5000]), KindSizeMismatch, 206, false, -1, "Content-Range size 1043576, want 1048576"},
		{"another version, longer", served(append(bytes.Clone(sampleContent), "v2"...)), KindSizeMismatch, 206, false, -1, "want 1048576"},
		{"a mirror ignoring Range", ignoringRange(sampleContent), KindOK, 200, true, 0, "verified in full"},
		{"a mirror ignoring Range, one flipped byte", ignoringRange(flipMiddle(sampleContent)), KindChecksumMismatch, 200, true, 0, "sha256"},
		{"one part covering every range (merged)", func(w http.ResponseWriter, r *http.Request) {
			first, last := asked[0].start, asked[len(asked)-1].end
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, size))
			w.Header().Set("Content-Length", strconv.FormatInt(last-first+1, 10))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(sampleContent[first : last+1])
		}, KindOK, 206, false, sampleK, ""},
		{"a range that was not asked", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 16384-32767/%d", size))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(sampleContent[16384:32768])
		}, KindHTTPStatus, 206, false, -1, "not what was asked"},
		{"the first range only", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", asked[0].start, asked[0].end, size))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(sampleContent[asked[0].start : asked[0].end+1])
		}, KindHTTPStatus, 206, false, -1, "not what was asked"},
		{"a part longer than its range", manual(func(w http.ResponseWriter, total int) {
			r := asked[0]
			writePart(w, int(r.start), int(r.end), total, sampleContent[r.start:r.end+100])
		}), KindTooLarge, 206, false, -1, "longer than its Content-Range"},
		{"a part shorter than its range", manual(func(w http.ResponseWriter, total int) {
			r := asked[0]
			writePart(w, int(r.start), int(r.end), total, sampleContent[r.start:r.end-100])
			fmt.Fprint(w, "\r\n--XyZ--\r\n")
		}), KindTruncated, 206, false, -1, "ended after"},
		{"parts missing", manual(func(w http.ResponseWriter, total int) {
			r := asked[0]
			writePart(w, int(r.start), int(r.end), total, sampleContent[r.start:r.end+1])
			fmt.Fprint(w, "\r\n--XyZ--\r\n")
		}), KindHTTPStatus, 206, false, -1, "ranges asked"},
		{"no size in the part", manual(func(w http.ResponseWriter, total int) {
			fmt.Fprintf(w, "\r\n--XyZ\r\nContent-Range: bytes 0-16383/*\r\n\r\n")
		}), KindHTTPStatus, 206, false, -1, "without the file's size"},
		{"endless part headers", manual(func(w http.ResponseWriter, total int) {
			fmt.Fprint(w, "\r\n--XyZ\r\n")
			line := []byte("X-Junk: " + strings.Repeat("j", 1000) + "\r\n")
			for range 3000 {
				if _, err := w.Write(line); err != nil {
					return
				}
			}
		}), KindTooLarge, 206, false, -1, "larger than the blocks asked"},
		{"no boundary", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "multipart/byteranges")
			w.WriteHeader(http.StatusPartialContent)
		}, KindHTTPStatus, 206, false, -1, "without a boundary"},
		{"416 of another size", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes */10")
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		}, KindSizeMismatch, 416, false, -1, "Content-Range size 10"},
		{"404", status(404), KindNotFound, 404, false, -1, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, tc.h)
			c, tr := newTestClient(t, nil)
			res := Sample(t.Context(), c, sampleTarget(srv.URL), blocks, pick)
			t.Logf("kind=%s status=%d bytes=%d sampled=%d/%d (%d bytes) detail=%q", res.Kind, res.Status, res.Bytes,
				res.Sampled, res.Blocks, res.SampledBytes, res.Detail)
			if res.Kind != tc.kind || res.Status != tc.status || res.Hashed != tc.hashed {
				t.Errorf("got %s %d hashed=%v, want %s %d hashed=%v (%s)", res.Kind, res.Status, res.Hashed, tc.kind, tc.status, tc.hashed, res.Detail)
			}
			if tc.sampled >= 0 && res.Sampled != tc.sampled {
				t.Errorf("sampled %d blocks, want %d", res.Sampled, tc.sampled)
			}
			if !strings.Contains(res.Detail, tc.detail) {
				t.Errorf("detail %q lacks %q", res.Detail, tc.detail)
			}
			if res.Kind == KindOK && res.Status == 206 {
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

// TestSampleAsksForThePickedBlocks: one request, its Range header the
// picked blocks with neighbours merged.
func TestSampleAsksForThePickedBlocks(t *testing.T) {
	blocks := digestsOf(sampleContent, sampleBlock)
	var got []string
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Range"))
		served(sampleContent)(w, r)
	})
	c, _ := newTestClient(t, nil)
	res := Sample(t.Context(), c, sampleTarget(srv.URL), blocks, []int{0, 1, 2, 10, 63})
	if res.Kind != KindOK || res.Sampled != 5 {
		t.Fatalf("%+v", res)
	}
	want := "bytes=0-49151,163840-180223,1032192-1048575"
	if len(got) != 1 || got[0] != want {
		t.Errorf("requests %q, want one with Range %q", got, want)
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
		if res := Sample(t.Context(), c, tg, tc.b, tc.pick); res.Kind != KindInternal {
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

func TestTouch(t *testing.T) {
	size := int64(len(sampleContent))
	cases := []struct {
		name   string
		h      http.HandlerFunc
		kind   Kind
		status int
		hashed bool
		bytes  int64
		detail string
	}{
		{"one byte", served(sampleContent), KindOK, 206, false, size, ""},
		{"another size", served(sampleContent[:1000]), KindSizeMismatch, 206, false, 1000, "Content-Range size 1000"},
		{"the range ignored", ignoringRange(sampleContent), KindOK, 200, true, size, "verified in full"},
		{"another range", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-9/%d", size))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(sampleContent[:10])
		}, KindHTTPStatus, 206, false, 0, "to a request for bytes=0-0"},
		{"more than one byte", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-0/%d", size))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(sampleContent[:10])
		}, KindTooLarge, 206, false, 0, "more than the one byte"},
		{"404", status(404), KindNotFound, 404, false, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, tc.h)
			c, tr := newTestClient(t, nil)
			res := Touch(t.Context(), c, sampleTarget(srv.URL))
			if res.Kind != tc.kind || res.Status != tc.status || res.Hashed != tc.hashed || res.Bytes != tc.bytes ||
				!strings.Contains(res.Detail, tc.detail) {
				t.Errorf("got %s %d hashed=%v bytes=%d %q; want %s %d hashed=%v bytes=%d %q", res.Kind, res.Status, res.Hashed,
					res.Bytes, res.Detail, tc.kind, tc.status, tc.hashed, tc.bytes, tc.detail)
			}
			tr.assertClosed(t)
		})
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
