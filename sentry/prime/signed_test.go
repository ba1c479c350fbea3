package prime_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/signature"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestPrimeSignedManifest: with releases.signature, a manifest signed by
// Debian's gpg with a key of the keyring is primed, and who signed it is
// recorded with the release.
func TestPrimeSignedManifest(t *testing.T) {
	t.Parallel()
	for _, clearsigned := range []bool{false, true} {
		name := map[bool]string{false: "detached", true: "clearsigned"}[clearsigned]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := world.NewSigner(t)
			w := world.New(t, &world.Options{Config: s.Configure(clearsigned)})
			w.SignManifest(t, s, s.Key, clearsigned)
			_, id := w.Static(t, "good")
			rep := w.Prime(t)
			if rep.Outcome != store.OutcomeCompleted || w.Marks(t)[w.LocWin][id] != world.Good {
				t.Fatalf("prime: %s %s", rep.Outcome, rep.Reason)
			}
			rel, err := w.Store.ReleaseByName(context.Background(), "1.5")
			if err != nil {
				t.Fatal(err)
			}
			if got := rel.Signer; got.Fingerprint != s.Key || got.UserID != world.SignerUID || got.SignedAt.IsZero() {
				t.Errorf("recorded signer %+v, want %s %q", got, s.Key, world.SignerUID)
			}
		})
	}
}

// TestPrimeRefusesUnsignedManifests: a forged manifest, a missing
// signature, a key not in the keyring, an expired key, a SHA-1 signature
// and a plain manifest where a clearsigned one is expected each make the
// release unusable: the prime fails naming why, no mirror is asked
// anything, and nothing of the release is recorded.
func TestPrimeRefusesUnsignedManifests(t *testing.T) {
	t.Parallel()
	s := world.NewSigner(t)
	// A key made in 2020 that expired a day later, and a signature it
	// made while it was valid.
	born := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	expired := s.GPG.KeyAt("Old Key <old@example.org>", "ed25519", "1d", born)
	keyring := filepath.Join(t.TempDir(), "keys.asc")
	if err := os.WriteFile(keyring, append(s.GPG.Export(s.Key), s.GPG.Export(expired)...), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name        string
		clearsigned bool
		serve       func(w *world.World)
		reason      error
		says        string
	}{
		{"forged manifest", false, func(w *world.World) {
			w.SignManifest(t, s, s.Key, false)
			// Someone who can write to the master changes a file and its
			// hash; the signature stays as the publisher made it.
			forged := w.Rel.Manifest()
			copy(forged, "00000000")
			w.Master.Put(w.Rel, "SHA256SUMS", forged)
		}, signature.ErrBadSignature, "does not match the manifest's bytes"},
		{"missing signature", false, func(w *world.World) {}, signature.ErrMissing, "no signature at"},
		{"key not in the keyring", false, func(w *world.World) { w.SignManifest(t, s, s.Stranger, false) },
			signature.ErrUnknownKey, "not in the keyring"},
		{"expired key", false, func(w *world.World) {
			w.Master.Put(w.Rel, "SHA256SUMS.asc", s.GPG.SignAt(expired, w.Rel.Manifest(), born.Add(time.Hour)))
		}, signature.ErrKeyExpired, "expired on"},
		{"SHA-1", false, func(w *world.World) {
			w.Master.Put(w.Rel, "SHA256SUMS.asc", s.GPG.Sign(s.Key, w.Rel.Manifest(), "--digest-algo", "SHA1"))
		}, signature.ErrWeakHash, "SHA-1"},
		{"signature of another file", false, func(w *world.World) {
			w.Master.Put(w.Rel, "SHA256SUMS.asc", s.GPG.Sign(s.Key, []byte("something else\n")))
		}, signature.ErrBadSignature, "does not match"},
		{"plain manifest, clearsigned expected", true, func(w *world.World) {}, signature.ErrUnparsable, "not a clearsigned message"},
		{"altered clearsigned manifest", true, func(w *world.World) {
			m := w.Rel.Manifest()
			signed := s.GPG.ClearSign(s.Key, m)
			w.Master.Put(w.Rel, "SHA256SUMS", bytes.Replace(signed, m[:8], []byte("00000000"), 1))
		}, signature.ErrBadSignature, "does not match"},
		{"clearsigned by a stranger", true, func(w *world.World) { w.SignManifest(t, s, s.Stranger, true) },
			signature.ErrUnknownKey, "not in the keyring"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			configure := func(c *config.Config) {
				s.Configure(tt.clearsigned)(c)
				c.Releases.Keyring = keyring
			}
			w := world.New(t, &world.Options{Config: configure})
			tt.serve(w)
			mirror, _ := w.Static(t, "good")
			_, err := sentry.Prime(context.Background(), w.Deps, sentry.PrimeOptions{Release: "1.5"})
			if !errors.Is(err, release.ErrManifest) || !errors.Is(err, signature.ErrSignature) || !errors.Is(err, tt.reason) ||
				!strings.Contains(err.Error(), tt.says) {
				t.Fatalf("prime: %v; want the manifest refused for %v, saying %q", err, tt.reason, tt.says)
			}
			if n := mirror.Stats().Requests; n != 0 {
				t.Errorf("the mirror was asked %d times", n)
			}
			var n int
			w.QueryRow(t, `SELECT (SELECT count(*) FROM sentry_releases) + (SELECT count(*) FROM sentry_work) +
				(SELECT count(*) FROM sentry_checks) + (SELECT count(*) FROM mirror_location_mirror_map) +
				(SELECT count(*) FROM sentry_log)`, nil, &n)
			if n != 0 {
				t.Errorf("%d rows written for a release that is unusable", n)
			}
			if outcome, reason := w.LastRun(t); outcome != store.OutcomeFailed || !strings.Contains(reason, tt.says) {
				t.Errorf("run recorded %s %q; want failed naming %q", outcome, reason, tt.says)
			}
		})
	}
}
