package sweep_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/notify"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestSweepRefusesARespunManifestWithoutItsSignature: a primed release's
// manifest changes on the master, its signature does not (whoever wrote
// the manifest has no key). The sweep changes nothing — the recorded
// manifest, its files and every mark stay —, says so in its report and
// sends a manifest_rejected event. Once the publisher signs the new
// manifest, the next sweep takes it.
func TestSweepRefusesARespunManifestWithoutItsSignature(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := world.NewSigner(t)
	w := world.New(t, &world.Options{Config: s.Configure(false)})
	w.SignManifest(t, s, s.Key, false)
	_, good := w.Static(t, "good")
	recv := world.NewReceiver(t, 0)
	n := notify.New(notify.Options{URLs: []string{recv.URL}, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
	w.Deps.Observer = observe.All(w.Seen, n)
	if rep := w.Prime(t); rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("prime: %s %s", rep.Outcome, rep.Reason)
	}
	before, err := w.Store.ReleaseByName(ctx, "1.5")
	if err != nil {
		t.Fatal(err)
	}
	filesBefore, err := w.Store.ReleaseFiles(ctx, before.ID)
	if err != nil {
		t.Fatal(err)
	}
	marks := w.Marks(t)

	p := "win32/en-US/Firefox Setup 1.5.exe"
	w.Publish(p, localmirror.Flip(w.Rel.Files[p])) // a new SHA256SUMS; the old SHA256SUMS.asc
	rep := w.Sweep(t, false)
	if len(rep.ManifestsRejected) != 1 || rep.ManifestsRejected[0].Release != "1.5" ||
		!strings.Contains(rep.ManifestsRejected[0].Reason, "does not match the manifest's bytes") {
		t.Errorf("report's manifests_rejected: %+v; want release 1.5's, its signature not matching", rep.ManifestsRejected)
	}
	after, err := w.Store.ReleaseByName(ctx, "1.5")
	if err != nil {
		t.Fatal(err)
	}
	filesAfter, err := w.Store.ReleaseFiles(ctx, after.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.ManifestSHA256 != before.ManifestSHA256 || !after.UpdatedAt.Equal(before.UpdatedAt) || len(filesAfter) != len(filesBefore) {
		t.Errorf("the recorded release changed: %+v, was %+v", after, before)
	}
	for i := range filesBefore {
		if filesAfter[i] != filesBefore[i] {
			t.Errorf("recorded file %+v, was %+v", filesAfter[i], filesBefore[i])
		}
	}
	if now := w.Marks(t); !world.SameMarks(now, marks) {
		t.Errorf("marks changed: %v, were %v", now, marks)
	}

	// The publisher signs the new manifest: the next sweep takes it, and
	// the mirror that kept the old bytes loses the respun location.
	w.SignManifest(t, s, s.Key, false)
	rep = w.Sweep(t, false)
	if len(rep.ManifestsRejected) != 0 {
		t.Errorf("a signed manifest rejected: %+v", rep.ManifestsRejected)
	}
	if rel, err := w.Store.ReleaseByName(ctx, "1.5"); err != nil || rel.ManifestSHA256 == before.ManifestSHA256 || rel.Signer.Fingerprint != s.Key {
		t.Errorf("after signing, release %+v (%v); want the new manifest, signed by %s", rel, err, s.Key)
	}
	if got := w.Marks(t)[w.LocWin][good]; got != world.Off {
		t.Errorf("the mirror holding the previous bytes: %+v, want off", got)
	}

	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var rejected []notify.Event
	for _, e := range recv.Got() {
		if e.Event == notify.EventManifestRejected {
			rejected = append(rejected, e)
		}
	}
	if len(rejected) != 1 || rejected[0].Manifest == nil || rejected[0].Manifest.Release != "1.5" ||
		!strings.HasSuffix(rejected[0].Manifest.URL, "/firefox/releases/1.5/SHA256SUMS") ||
		!strings.Contains(rejected[0].Manifest.Reason, "signature") || rejected[0].Manifest.RunKind != "sweep" {
		t.Errorf("manifest_rejected events: %+v; want one for release 1.5", rejected)
	}
}
