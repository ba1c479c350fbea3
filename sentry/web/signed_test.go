package web_test

import (
	"encoding/json"
	"html"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/web"
)

// TestReleaseShowsItsSigner: a release primed from a manifest signed by
// Debian's gpg names its signer on its page and in /api/releases/{name};
// the user id is escaped like every other text of the page.
func TestReleaseShowsItsSigner(t *testing.T) {
	t.Parallel()
	s := world.NewSigner(t)
	w := world.New(t, &world.Options{Config: s.Configure(false)})
	w.SignManifest(t, s, s.Key, false)
	w.Static(t, "good")
	w.Prime(t)
	srv := world.ServePage(t, web.Options{Reporter: report.New(w.Pool(), nil)})

	code, body, _ := world.Get(t, srv.URL+"/releases/1.5")
	if code != 200 || !strings.Contains(body, "Manifest signed by <strong>"+html.EscapeString(world.SignerUID)+"</strong>") ||
		!strings.Contains(body, "<code>"+s.Key+"</code>") {
		t.Errorf("release page (%d) does not name the signer %s %s:\n%s", code, world.SignerUID, s.Key, body)
	}
	code, body, _ = world.Get(t, srv.URL+"/api/releases/1.5")
	var rel report.Release
	if err := json.Unmarshal([]byte(body), &rel); err != nil || code != 200 {
		t.Fatalf("/api/releases/1.5: %d %v\n%s", code, err, body)
	}
	if rel.Signature == nil || rel.Signature.Fingerprint != s.Key || rel.Signature.UserID != world.SignerUID || rel.Signature.SignedAt.IsZero() {
		t.Errorf("API signature %+v, want %s %q", rel.Signature, s.Key, world.SignerUID)
	}
}
