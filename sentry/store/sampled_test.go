package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestSampledVerificationState: a sampled check is a verification (the
// pair is verified, by "sampled") but not a hash (hashed_at stays that of
// the last full hash: a pair only ever sampled was never hashed, and deep
// sweeps take it first); a sample of right blocks does not clear a
// checksum mismatch, which only a full hash clears; sampled checks are
// rows saying how many blocks of how many they read.
func TestSampledVerificationState(t *testing.T) {
	st, mirror, run := migrated(t)
	ctx := context.Background()
	rel, err := st.SaveRelease(ctx, "1.0", "http://master/SHA256SUMS", "x", []store.ReleaseFile{
		{Path: "a.bin", Size: 1 << 20, Algo: "sha256", Hash: "aa"}}, store.ManifestValidators{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	write := func(c store.Check) {
		t.Helper()
		c.RunID, c.MirrorID, c.ReleaseID, c.Path, c.Vantage, c.Method = run, mirror, rel.ID, "a.bin", "us", "GET"
		at = at.Add(time.Minute)
		c.CheckedAt, c.Size, c.Bytes = at, 1<<20, 1<<20
		if _, err := st.WriteChecks(ctx, store.Batch{Checks: []store.Check{c}}); err != nil {
			t.Fatal(err)
		}
	}
	state := func() (fs store.FileState, by string) {
		t.Helper()
		states, err := st.MirrorFileStates(ctx, mirror, []int64{rel.ID}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Pool().QueryRow(ctx, `SELECT verified_by FROM sentry_file_state`).Scan(&by); err != nil {
			t.Fatal(err)
		}
		return states[store.FileKey{ReleaseID: rel.ID, Path: "a.bin"}], by
	}
	resumable := func() bool {
		t.Helper()
		v, err := st.VerifiedFiles(ctx, rel.ID, mirror)
		if err != nil {
			t.Fatal(err)
		}
		return v["a.bin"]
	}

	write(store.Check{Result: "ok", SampleBlocks: 32, FileBlocks: 64})
	if fs, by := state(); fs.Result != "ok" || !fs.Verified || !fs.HashedAt.IsZero() || by != "sampled" || !resumable() {
		t.Errorf("after a sample: %+v by %q; want ok, verified by sampled, never hashed, resumable", fs, by)
	}
	var sampled, blocks *int
	var hashed bool
	if err := st.Pool().QueryRow(ctx, `SELECT sample_blocks, file_blocks, hashed FROM sentry_checks ORDER BY id DESC LIMIT 1`).
		Scan(&sampled, &blocks, &hashed); err != nil {
		t.Fatal(err)
	}
	if sampled == nil || *sampled != 32 || blocks == nil || *blocks != 64 || hashed {
		t.Errorf("the check row says %v of %v blocks, hashed %v; want 32 of 64, not hashed", sampled, blocks, hashed)
	}

	write(store.Check{Result: "ok", Hashed: true})
	hashedAt := at
	if fs, by := state(); !fs.Verified || !fs.HashedAt.Equal(hashedAt) || by != "full" {
		t.Errorf("after a full hash: %+v by %q; want verified by full at %s", fs, by, hashedAt)
	}
	write(store.Check{Result: "ok", SampleBlocks: 32, FileBlocks: 64})
	if fs, by := state(); !fs.Verified || !fs.HashedAt.Equal(hashedAt) || by != "sampled" {
		t.Errorf("a sample after the hash: %+v by %q; want hashed_at %s kept, verified by sampled", fs, by, hashedAt)
	}

	write(store.Check{Result: "checksum_mismatch", Hashed: true, Detail: "one flipped byte"})
	write(store.Check{Result: "ok", SampleBlocks: 32, FileBlocks: 64})
	if fs, by := state(); fs.Result != "checksum_mismatch" || fs.Verified || by != "" || resumable() {
		t.Errorf("a sample of right blocks after a mismatch: %+v by %q; want the mismatch kept, not verified", fs, by)
	}
	if m, err := st.MismatchedFiles(ctx, rel.ID, mirror); err != nil || !m["a.bin"] {
		t.Errorf("mismatched files %v, %v; want a.bin (a prime verifies it in full)", m, err)
	}
	write(store.Check{Result: "ok", Hashed: true})
	if fs, by := state(); fs.Result != "ok" || !fs.Verified || by != "full" {
		t.Errorf("a full hash after the mismatch: %+v by %q; want ok, verified by full", fs, by)
	}
}

func TestBlockDigestsAndPriming(t *testing.T) {
	st, mirror, _ := migrated(t)
	ctx := context.Background()
	k := store.DigestKey{Algo: "sha256", Hash: "ab", Size: 40000, BlockSize: 16384}
	d := bytes.Repeat([]byte{7}, 3*32)
	if err := st.SaveBlockDigests(ctx, k, d); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveBlockDigests(ctx, k, d); err != nil {
		t.Fatalf("saved twice: %v", err)
	}
	if err := st.SaveBlockDigests(ctx, store.DigestKey{Algo: "sha256", Hash: "cd", Size: 40000, BlockSize: 16384}, d[:32]); err == nil {
		t.Error("digests of the wrong length saved")
	}
	other := store.DigestKey{Algo: "sha256", Hash: "ab", Size: 40000, BlockSize: 8192}
	got, err := st.BlockDigests(ctx, []store.DigestKey{k, other})
	if err != nil || len(got) != 1 || !bytes.Equal(got[k], d) {
		t.Errorf("digests %v, %v; want the one saved", got, err)
	}

	lost := false
	if err := st.SavePriming(ctx, mirror, store.PrimeByRange, "hit", fence{"a", &lost}); !errors.Is(err, store.ErrFenced) {
		t.Errorf("priming under a lost lease: %v", err)
	}
	if err := st.SavePriming(ctx, mirror, store.PrimeByRange, "a hit after a one-byte range", nil); err != nil {
		t.Fatal(err)
	}
	if err := st.SavePriming(ctx, mirror, store.PrimeByGet, "a miss", nil); err != nil {
		t.Fatal(err)
	}
	ps, err := st.Primings(ctx)
	if err != nil || len(ps) != 1 || ps[mirror].By != store.PrimeByGet || ps[mirror].Reason != "a miss" {
		t.Errorf("primings %v, %v", ps, err)
	}
}
