package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// TestSignedManifestCommands: with releases.signature, `sentry prime`
// refuses a manifest signed by a key not in the keyring (exit 1, the
// reason named, no mirror asked, nothing recorded) and primes a signed
// one; `sentry report --release` names the signer in every format, and
// `sentry sweep` says when it refuses a changed manifest.
func TestSignedManifestCommands(t *testing.T) {
	t.Parallel()
	s := world.NewSigner(t)
	w := setupPrime(t)
	data, err := os.ReadFile(w.Config)
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), "  products:", "  signature: SHA256SUMS.asc\n  keyring: "+s.Keyring+"\n  products:", 1))
	if err := os.WriteFile(w.Config, data, 0o600); err != nil {
		t.Fatal(err)
	}
	mirror := world.Static(t, "good", w.Rel)
	w.mirror(t, "good", mirror.URL)
	sign := func(key string) {
		w.Master.Put(w.Rel, "SHA256SUMS", w.Rel.Manifest())
		w.Master.Put(w.Rel, "SHA256SUMS.asc", s.GPG.Sign(key, w.Rel.Manifest()))
	}

	sign(s.Stranger)
	code, stdout, stderr := run(t, nil, "prime", "--config", w.Config, "--release", "1.5")
	if code != ExitFailure || !strings.Contains(stderr, "signature refused") || !strings.Contains(stderr, "not in the keyring") {
		t.Errorf("a stranger's signature: exit %d\n%s%s", code, stdout, stderr)
	}
	if n := mirror.Stats().Requests; n != 0 {
		t.Errorf("the mirror was asked %d times", n)
	}
	var rels int
	w.Query(t, `SELECT count(*) FROM sentry_releases`, &rels)
	if rels != 0 {
		t.Errorf("%d releases recorded from a refused manifest", rels)
	}

	sign(s.Key)
	if code, stdout, stderr := run(t, nil, "prime", "--config", w.Config, "--release", "1.5"); code != ExitOK {
		t.Fatalf("a signed manifest: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = run(t, nil, "report", "--config", w.Config, "--release", "1.5")
	if code != ExitOK || !strings.Contains(stdout, "manifest signed by "+world.SignerUID+", on ") ||
		!strings.Contains(stdout, "\n    key "+s.Key+"\n") {
		t.Errorf("report table: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = run(t, nil, "report", "--config", w.Config, "--release", "1.5", "--format", "json")
	var rep struct {
		Signature *struct {
			Fingerprint string `json:"fingerprint"`
			UserID      string `json:"user_id"`
			SignedAt    string `json:"signed_at"`
		} `json:"signature"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != ExitOK || rep.Signature == nil ||
		rep.Signature.Fingerprint != s.Key || rep.Signature.UserID != world.SignerUID || rep.Signature.SignedAt == "" {
		t.Errorf("report JSON: exit %d %v\n%s", code, err, stdout)
	}
	code, stdout, _ = run(t, nil, "report", "--config", w.Config, "--release", "1.5", "--format", "csv")
	if code != ExitOK || !strings.Contains(stdout, "signature,"+world.SignerUID+",,,,,,,,,,"+s.Key+",,") {
		t.Errorf("report CSV: exit %d\n%s", code, stdout)
	}

	// A respin whose manifest nobody signed: the sweep keeps the known one.
	p := "notes.txt"
	w.Rel.Files[p] = localmirror.Flip(w.Rel.Files[p])
	w.Master.Put(w.Rel, p, w.Rel.Files[p])
	w.Master.Put(w.Rel, "SHA256SUMS", w.Rel.Manifest())
	code, stdout, stderr = run(t, nil, "sweep", "--config", w.Config)
	if code != ExitOK || !strings.Contains(stdout, "release 1.5: its manifest changed and is REFUSED, the known one kept") {
		t.Errorf("sweep: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, line := range strings.Split(stdout, "\n") {
		if len([]rune(line)) > 80 {
			t.Errorf("sweep line longer than 80 columns: %q", line)
		}
	}
}
