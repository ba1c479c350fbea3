package sentry_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/pgtest"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Micro-benchmarks of result batching (run by `make bench`, never by `make
// test`). internal/bench measures the recording rate end to end.

type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) WriteChecks(_ context.Context, cs []store.Check) error {
	w.n.Add(int64(len(cs)))
	return nil
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
	rec := sentry.NewRecorder(w, nil)
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

// BenchmarkWriteChecks writes batches of 5,000 checks (COPY into
// sentry_checks and the upsert of sentry_file_state): ns/op is per check.
func BenchmarkWriteChecks(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, pgtest.NewDB(b), 4)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO mirror_mirrors (name, baseurl) SELECT 'm' || i, 'http://m' || i FROM generate_series(1, 100) i`); err != nil {
		b.Fatal(err)
	}
	if _, err := st.SaveRelease(ctx, "1.0", "u", "x", nil); err != nil {
		b.Fatal(err)
	}
	run, err := st.StartRun(ctx, store.RunSweep, 0, "bench")
	if err != nil {
		b.Fatal(err)
	}
	const batch = 5000
	checks := make([]store.Check, batch)
	for i := range checks {
		checks[i] = benchCheck(i)
		checks[i].RunID = run.ID
	}
	var rel int64
	if err := st.Pool().QueryRow(ctx, `SELECT id FROM sentry_releases`).Scan(&rel); err != nil {
		b.Fatal(err)
	}
	for i := range checks {
		checks[i].ReleaseID = rel
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		if err := st.WriteChecks(ctx, checks[:n]); err != nil {
			b.Fatal(err)
		}
	}
}
