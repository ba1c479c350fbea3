package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestVerifiedSinceSuspension pins the rule of a returning mirror at its
// boundary: a file counts as verified only when its last verification
// came strictly after the mirror's suspension; one made at the very
// instant of the suspension is void, as is one made before. Sweeps read
// the rule in the file states (Verified, Void), a prime's resume in
// VerifiedFiles.
func TestVerifiedSinceSuspension(t *testing.T) {
	st, mirror, run := migrated(t)
	ctx := context.Background()
	files := []store.ReleaseFile{
		{Path: "before.bin", Size: 10, Algo: "sha256", Hash: "aa"},
		{Path: "at.bin", Size: 10, Algo: "sha256", Hash: "bb"},
		{Path: "after.bin", Size: 10, Algo: "sha256", Hash: "cc"},
	}
	rel, err := st.SaveRelease(ctx, "1.0", "http://master/SHA256SUMS", "x", files, store.ManifestValidators{})
	if err != nil {
		t.Fatal(err)
	}
	susp := time.Now().Add(-time.Hour).Truncate(time.Second)
	at := map[string]time.Time{"before.bin": susp.Add(-time.Microsecond), "at.bin": susp, "after.bin": susp.Add(time.Microsecond)}
	var checks []store.Check
	for path, when := range at {
		checks = append(checks, store.Check{RunID: run, MirrorID: mirror, ReleaseID: rel.ID, Path: path, Vantage: "us",
			Method: "GET", CheckedAt: when, Size: 10, Bytes: 10, Result: "ok", Hashed: true})
	}
	if _, err := st.WriteChecks(ctx, store.Batch{Checks: checks}); err != nil {
		t.Fatal(err)
	}
	check := func(when string, want map[string]bool) {
		t.Helper()
		states, err := st.MirrorFileStates(ctx, mirror, []int64{rel.ID}, len(files))
		if err != nil {
			t.Fatal(err)
		}
		resumable, err := st.VerifiedFiles(ctx, rel.ID, mirror)
		if err != nil {
			t.Fatal(err)
		}
		for path, verified := range want {
			fs := states[store.FileKey{ReleaseID: rel.ID, Path: path}]
			if fs.Result != "ok" || fs.Verified != verified || fs.Void == verified || resumable[path] != verified {
				t.Errorf("%s, %s: verified %v, void %v, resumable %v; want verified and resumable %v, void %v",
					when, path, fs.Verified, fs.Void, resumable[path], verified, !verified)
			}
		}
	}
	check("never suspended", map[string]bool{"before.bin": true, "at.bin": true, "after.bin": true})

	if _, err := st.Pool().Exec(ctx, `INSERT INTO sentry_mirror_state (mirror_id, suspended_at) VALUES ($1, $2)
		ON CONFLICT (mirror_id) DO UPDATE SET suspended_at = excluded.suspended_at`, mirror, susp); err != nil {
		t.Fatal(err)
	}
	check("suspended", map[string]bool{"before.bin": false, "at.bin": false, "after.bin": true})
}
