package world

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/testgpg"
	"github.com/mirrorsentry/sentry/sentry/config"
)

// Signer is a publisher signing manifests with Debian's gpg: a key of its
// own (Key), written to a keyring file (Keyring) as an operator exports
// it, and another key the keyring does not hold (Stranger).
type Signer struct {
	GPG      *testgpg.GPG
	Key      string
	Stranger string
	Keyring  string
}

// SignerUID is the user id of a Signer's key.
const SignerUID = "Release Team <release@example.org>"

// NewSigner makes a Signer; the test is skipped outside CI without gpg.
func NewSigner(t testing.TB) *Signer {
	t.Helper()
	g := testgpg.New(t)
	s := &Signer{GPG: g, Key: g.Key(SignerUID, "never"), Stranger: g.Key("Stranger <stranger@example.org>", "never")}
	s.Keyring = filepath.Join(t.TempDir(), "release-keys.asc")
	if err := os.WriteFile(s.Keyring, g.Export(s.Key), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// Configure is an Options.Config that makes sentry verify manifests
// against the signer's keyring: a detached SHA256SUMS.asc, or a
// clearsigned manifest.
func (s *Signer) Configure(clearsigned bool) func(*config.Config) {
	return func(c *config.Config) {
		c.Releases.Keyring = s.Keyring
		c.Releases.Signature = "SHA256SUMS.asc"
		if clearsigned {
			c.Releases.Signature = config.SignatureClearsigned
		}
	}
}

// SignManifest puts the world's manifest (as Publish last wrote it) on
// the master signed by key: a detached SHA256SUMS.asc beside it, or the
// manifest clearsigned in its place.
func (w *World) SignManifest(t testing.TB, s *Signer, key string, clearsigned bool) {
	t.Helper()
	m := w.Rel.Manifest()
	if clearsigned {
		w.Master.Put(w.Rel, "SHA256SUMS", s.GPG.ClearSign(key, m))
		return
	}
	w.Master.Put(w.Rel, "SHA256SUMS", m)
	w.Master.Put(w.Rel, "SHA256SUMS.asc", s.GPG.Sign(key, m))
}
