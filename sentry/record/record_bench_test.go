package record_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/record"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Micro-benchmarks of result batching (run by `make bench`, never by `make
// test`). internal/bench measures the recording rate end to end.

type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) WriteChecks(_ context.Context, b store.Batch) (int, error) {
	w.n.Add(int64(len(b.Checks)))
	for _, c := range b.Counts {
		w.n.Add(c.N)
	}
	return 0, nil
}

func benchCheck(i int) store.Check {
	return store.Check{RunID: 1, MirrorID: 1 + i%100, ReleaseID: 1, Path: fmt.Sprintf("os%03d/l%03d/file.bin", i%20, i%100),
		CheckedAt: time.Now(), Vantage: "default", Method: "HEAD", Result: "ok", Status: 200, Bytes: 4096,
		Duration: time.Millisecond, Attempts: 1, ETag: `"0123456789abcdef"`, LastModified: "Mon, 02 Jan 2006 15:04:05 GMT", Size: 4096}
}

// BenchmarkRecorderAdd is the cost of handing one check to the recorder
// from many goroutines (the batching alone: the writer discards).
func BenchmarkRecorderAdd(b *testing.B) {
	w := &countingWriter{}
	rec := record.New(w, nil)
	c := benchCheck(1)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := rec.Add(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
	})
	if err := rec.Close(ctx); err != nil {
		b.Fatal(err)
	}
}
