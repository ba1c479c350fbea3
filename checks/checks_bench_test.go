package checks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"testing"
)

// Micro-benchmarks of the hot paths (run by `make bench`, never by `make
// test`: `go test -run '^$' -bench . ./checks`). Figures against real
// mirrors are internal/bench's.

func benchBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

func benchServer(b *testing.B, body []byte) string {
	etag := `"bench"`
	srv := serve(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Method == http.MethodHead {
			return
		}
		w.Write(body)
	})
	return srv.URL + "/pub/file.bin"
}

// BenchmarkHead is one light-sweep check over a pooled loopback connection.
func BenchmarkHead(b *testing.B) {
	body := benchBody(4 << 10)
	u := benchServer(b, body)
	c, _ := newTestClient(b, nil)
	ctx := context.Background()
	t := Target{URL: u, Size: int64(len(body))}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := Head(ctx, c, t); r.Kind != KindOK {
				b.Fatal(r.Kind, r.Detail)
			}
		}
	})
}

// BenchmarkVerifyParallel is deep checks of a 1 MiB file in parallel: GET, SHA-256 as the
// bytes arrive.
func BenchmarkVerifyParallel(b *testing.B) {
	body := benchBody(1 << 20)
	u := benchServer(b, body)
	c, _ := newTestClient(b, nil)
	ctx := context.Background()
	sum := sha256.Sum256(body)
	t := Target{URL: u, Size: int64(len(body)), Algo: "sha256", Hash: hex.EncodeToString(sum[:])}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := Verify(ctx, c, t); r.Kind != KindOK {
				b.Fatal(r.Kind, r.Detail)
			}
		}
	})
}

// BenchmarkHashPipeline is the body reader alone: a 1 MiB body through the
// pooled buffer into SHA-256 (compare with BenchmarkSHA256).
func BenchmarkHashPipeline(b *testing.B) {
	body := benchBody(1 << 20)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		h, _, _ := newHash("sha256")
		if n, err := readBody(bytes.NewReader(body), int64(len(body))+1, h); err != nil || n != int64(len(body)) {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkSHA256 is the limit of BenchmarkHashPipeline: hashing in memory.
func BenchmarkSHA256(b *testing.B) {
	body := benchBody(1 << 20)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		sha256.Sum256(body)
	}
}
