package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/testgpg"
)

// TestSignatureKeys: releases.signature and releases.keyring go together,
// and the keyring is checked at load: readable, holding a public key.
func TestSignatureKeys(t *testing.T) {
	t.Parallel()
	g := testgpg.New(t)
	fpr := g.Key("Release Team <release@example.org>", "never")
	dir := t.TempDir()
	good := filepath.Join(dir, "keys.asc")
	if err := os.WriteFile(good, g.Export(fpr), 0o644); err != nil {
		t.Fatal(err)
	}
	notKeys := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notKeys, []byte("the release key is on the wiki\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	load := func(extra string) (*Config, error) {
		return Parse([]byte(strings.Replace(minimalConfig, "releases:\n", "releases:\n"+extra, 1)), "c.yaml", noEnv)
	}

	cfg, err := load("  signature: SHA256SUMS.asc\n  keyring: " + good + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.SignatureURL("1.5"), "https://staging.example.org/pub/firefox/releases/1.5/SHA256SUMS.asc"; got != want {
		t.Errorf("SignatureURL = %q, want %q", got, want)
	}
	cfg, err = load("  manifest: https://sums.example.org/{release}/SHA512SUMS\n  signature: \"SHA512SUMS sig.asc\"\n  keyring: " + good + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.SignatureURL("1.5"), "https://sums.example.org/1.5/SHA512SUMS%20sig.asc"; got != want {
		t.Errorf("SignatureURL beside a manifest URL = %q, want %q", got, want)
	}
	cfg, err = load("  signature: clearsigned\n  keyring: " + good + "\n")
	if err != nil || !cfg.Releases.Clearsigned() || cfg.SignatureURL("1.5") != "" {
		t.Errorf("clearsigned: %v", err)
	}
	if cfg, err := load(""); err != nil || cfg.Releases.Signed() {
		t.Errorf("unset: %v, signed %v", err, cfg.Releases.Signed())
	}

	for _, tt := range []struct {
		name, yaml string
		says       []string
	}{
		{"signature without keyring", "  signature: SHA256SUMS.asc\n", []string{"releases.signature is set but releases.keyring is not"}},
		{"keyring without signature", "  keyring: " + good + "\n", []string{"releases.keyring is set but releases.signature is not"}},
		{"missing keyring", "  signature: SHA256SUMS.asc\n  keyring: " + filepath.Join(dir, "nope.asc") + "\n",
			[]string{"releases.keyring", "nope.asc", "does not exist"}},
		{"not a keyring", "  signature: SHA256SUMS.asc\n  keyring: " + notKeys + "\n",
			[]string{"releases.keyring", notKeys, "holds no OpenPGP public key"}},
		{"absolute name", "  signature: /SHA256SUMS.asc\n  keyring: " + good + "\n", []string{"releases.signature \"/SHA256SUMS.asc\" must be"}},
		{"the manifest itself", "  signature: SHA256SUMS\n  keyring: " + good + "\n", []string{"names the manifest itself"}},
		{"entries", "  max_manifest_entries: 0\n", []string{"releases.max_manifest_entries must be between 1 and 10000000"}},
	} {
		_, err := load(tt.yaml)
		for _, s := range tt.says {
			if err == nil || !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %v, want an error saying %q", tt.name, err, s)
			}
		}
	}
}
