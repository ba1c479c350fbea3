package prime_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestFaultHugeBodyStreamsInBoundedMemory primes a 128 MiB file through a
// good mirror and through one answering it with an endless body: the good
// copy is verified and the endless one stopped at 128 MiB + 1 byte, while
// the process allocates a small fraction of what went through the hash.
//
// Not parallel: it measures the allocations of the whole process, which
// no other test may share (a test that is not parallel runs alone).
func TestFaultHugeBodyStreamsInBoundedMemory(t *testing.T) {
	const (
		block = 64 << 10
		size  = 128 << 20
		huge  = "iso/firefox-1.5.iso"
	)
	w := world.New(t, nil)
	d := w.Deps
	chunk := localmirror.Content("huge block", block)
	sum := sha256.New()
	for range size / block {
		sum.Write(chunk)
	}
	// The manifest gives the huge file's size and hash (a .checksums
	// manifest), so that nothing has to hold the file.
	var man bytes.Buffer
	for _, p := range w.Rel.Paths() {
		h := sha256.Sum256(w.Rel.Files[p])
		fmt.Fprintf(&man, "%x sha256 %d %s\n", h, len(w.Rel.Files[p]), p)
	}
	fmt.Fprintf(&man, "%x sha256 %d %s\n", sum.Sum(nil), size, huge)
	w.Master.Put(w.Rel, "SHA256SUMS", man.Bytes())

	stream := func(s *localmirror.Server, endless bool) *atomic.Int64 {
		var sent atomic.Int64
		s.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.URL.Path, "/"+huge) {
				return false
			}
			if !endless {
				w.Header().Set("Content-Length", strconv.Itoa(size))
			}
			if r.Method == http.MethodHead {
				return true
			}
			for i := 0; endless || i < size/block; i++ {
				n, err := w.Write(chunk)
				sent.Add(int64(n))
				if err != nil {
					return true
				}
			}
			return true
		})
		return &sent
	}
	stream(w.Master, false)
	goodSrv, goodID := w.Static(t, "good")
	goodSent := stream(goodSrv, false)
	endlessSrv, endlessID := w.Static(t, "endless")
	endlessSent := stream(endlessSrv, true)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rep, err := sentry.Prime(ctx, d, sentry.PrimeOptions{Release: "1.5"})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
	}
	if s := world.MirrorSums(t, rep, "good"); s.State != "ok" || s.BytesVerified < size {
		t.Errorf("good mirror: %+v", s)
	}
	if s := world.MirrorSums(t, rep, "endless"); s.Failures["too_large"] != 1 || s.FilesOK != 4 {
		t.Errorf("endless mirror: %+v", s)
	}
	var goodBytes, endlessBytes int64
	if err := w.Pool().QueryRow(ctx, `SELECT
		(SELECT bytes FROM sentry_checks WHERE mirror_id = $1 AND path = $3 AND method = 'GET' AND result = 'ok'),
		(SELECT bytes FROM sentry_checks WHERE mirror_id = $2 AND path = $3 AND method = 'GET' AND result = 'too_large')`,
		goodID, endlessID, huge).Scan(&goodBytes, &endlessBytes); err != nil {
		t.Fatal(err)
	}
	if goodBytes != size || endlessBytes != size+1 {
		t.Errorf("read %d bytes of the good copy and %d of the endless one; want %d and %d", goodBytes, endlessBytes, size, size+1)
	}
	streamed := goodSent.Load() + endlessSent.Load()
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d MiB streamed from the mirrors, %d MiB allocated by the whole process", streamed>>20, alloc>>20)
	if streamed < 2*size {
		t.Fatalf("only %d bytes streamed", streamed)
	}
	if alloc > uint64(streamed/8) {
		t.Errorf("allocated %d MiB while %d MiB streamed: bodies are held, not streamed", alloc>>20, streamed>>20)
	}
}
