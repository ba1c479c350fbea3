package sentry_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
)

// TestHookRefusesAnUnsignedManifest: with releases.signature, the release
// hook answers 422 naming why when the master's manifest is forged, its
// signature missing or made by a key not in the keyring, and starts
// nothing; a mirror is never asked. A signed manifest is accepted (202).
func TestHookRefusesAnUnsignedManifest(t *testing.T) {
	t.Parallel()
	s := world.NewSigner(t)
	w := world.New(t, &world.Options{Config: s.Configure(false)})
	mirror, _ := w.Static(t, "good")
	base := daemon(t, w.Deps, sentry.DaemonOptions{})
	secret := []byte(w.Deps.Config.Hook.Secret)
	at := time.Now()
	for _, tt := range []struct {
		name  string
		serve func()
		says  string
	}{
		{"missing signature", func() {}, "no signature at"},
		{"key not in the keyring", func() { w.SignManifest(t, s, s.Stranger, false) }, "not in the keyring"},
		{"forged manifest", func() {
			w.SignManifest(t, s, s.Key, false)
			forged := w.Rel.Manifest()
			copy(forged, "00000000")
			w.Master.Put(w.Rel, "SHA256SUMS", forged)
		}, "does not match the manifest's bytes"},
	} {
		tt.serve()
		at = at.Add(time.Second)
		code, out := postHook(t, base, secret, at, `{"release": "1.5"}`)
		reason, _ := out["error"].(string)
		if code != http.StatusUnprocessableEntity || !strings.Contains(reason, tt.says) {
			t.Errorf("%s: %d %v; want 422 saying %q", tt.name, code, out, tt.says)
		}
	}
	if n := w.CountRuns(t, "prime"); n != 0 {
		t.Errorf("%d primes recorded for refused hooks", n)
	}
	if n := mirror.Stats().Requests; n != 0 {
		t.Errorf("the mirror was asked %d times", n)
	}
	w.SignManifest(t, s, s.Key, false)
	if code, out := postHook(t, base, secret, at.Add(time.Second), `{"release": "1.5"}`); code != http.StatusAccepted {
		t.Errorf("a signed manifest: %d %v, want 202", code, out)
	}
}
