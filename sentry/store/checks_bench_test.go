package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func benchCheck(i int) store.Check {
	return store.Check{RunID: 1, MirrorID: 1 + i%100, ReleaseID: 1, Path: fmt.Sprintf("os%03d/l%03d/file-%d.bin", i%20, i%100, i),
		CheckedAt: time.Now(), Vantage: "default", Method: "HEAD", Result: "ok", Status: 200, Bytes: 4096,
		Duration: time.Millisecond, Attempts: 1, ETag: `"0123456789abcdef"`, LastModified: "Mon, 02 Jan 2006 15:04:05 GMT", Size: 4096}
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
	for i := 1; i <= 100; i++ {
		factory.Mirror(ctx, b, st.Pool(), &factory.MirrorOpts{Name: fmt.Sprintf("m%d", i), BaseURL: fmt.Sprintf("http://m%d", i)})
	}
	if _, err := st.SaveRelease(ctx, "1.0", "u", "x", nil, store.ManifestValidators{}); err != nil {
		b.Fatal(err)
	}
	var runID int64
	if err := st.Pool().QueryRow(ctx, `INSERT INTO sentry_runs (kind, vantage, host, pid) VALUES ('sweep', 'bench', 'bench', 0)
		RETURNING id`).Scan(&runID); err != nil {
		b.Fatal(err)
	}
	const batch = 5000
	checks := make([]store.Check, batch)
	for i := range checks {
		checks[i] = benchCheck(i)
		checks[i].RunID = runID
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
		if _, err := st.WriteChecks(ctx, store.Batch{Checks: checks[:n]}); err != nil {
			b.Fatal(err)
		}
	}
}
