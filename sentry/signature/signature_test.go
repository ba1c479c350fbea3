package signature

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/testgpg"
)

const manifest = "0000000000000000000000000000000000000000000000000000000000000000  a.exe\n" +
	"1111111111111111111111111111111111111111111111111111111111111111  win32/de/Firefox Setup 1.5.exe\n"

// keyring writes data to a keyring file and reads it.
func keyring(t *testing.T, data ...[]byte) *Keyring {
	t.Helper()
	f := filepath.Join(t.TempDir(), "keyring.asc")
	if err := os.WriteFile(f, bytes.Join(data, []byte("\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := ReadKeyring(f)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// verify streams body through a detached verification of sig, as
// package release does, and gives what was read and the verdict.
func verify(k *Keyring, sig []byte, body string, now time.Time) (string, Signer, error) {
	v, err := k.Detached(sig, strings.NewReader(body), now)
	if err != nil {
		return "", Signer{}, err
	}
	read, err := io.ReadAll(v)
	if err != nil {
		return "", Signer{}, err
	}
	s, err := v.Finish()
	return string(read), s, err
}

// TestDetachedByRealGPG: signatures made by Debian's gpg verify, and every
// way a signature can be wrong is refused with its reason.
func TestDetachedByRealGPG(t *testing.T) {
	t.Parallel()
	g := testgpg.New(t)
	fpr := g.Key("Release Team <release@example.org>", "never")
	other := g.Key("Someone Else <else@example.org>", "never")
	k := keyring(t, g.Export(fpr))
	now := time.Now()

	sig := g.Sign(fpr, []byte(manifest))
	read, s, err := verify(k, sig, manifest, now)
	if err != nil {
		t.Fatalf("a good signature: %v", err)
	}
	if read != manifest {
		t.Errorf("read %q through the verifier", read)
	}
	if s.Fingerprint != fpr || s.UserID != "Release Team <release@example.org>" || s.SigningKey != "" {
		t.Errorf("signer %+v, want %s", s, fpr)
	}
	if d := now.Sub(s.SignedAt); d < -time.Minute || d > time.Hour {
		t.Errorf("signed at %s, now %s", s.SignedAt, now)
	}

	// The binary form of the same signature verifies too.
	bin := g.Run(nil, "--dearmor", "--output", "-", writeTemp(t, sig))
	if _, _, err := verify(k, bin, manifest, now); err != nil {
		t.Errorf("a binary signature: %v", err)
	}
	// A text-mode signature (gpg --textmode) verifies over the same bytes.
	if _, _, err := verify(k, g.Sign(fpr, []byte(manifest), "--textmode"), manifest, now); err != nil {
		t.Errorf("a text-mode signature: %v", err)
	}

	// A signing subkey's signature is told as the primary key's.
	sub := g.Key("Subkey Signer <sub@example.org>", "never")
	g.Run(nil, "--quick-add-key", sub, "ed25519", "sign", "never")
	ks := keyring(t, g.Export(sub))
	// gpg signs with the newest signing subkey when given the primary's
	// fingerprint without a "!".
	if _, s, err := verify(ks, g.Sign(sub, []byte(manifest)), manifest, now); err != nil || s.Fingerprint != sub || s.SigningKey == "" || s.SigningKey == sub {
		t.Errorf("a subkey's signature: %v, signer %+v, want primary %s and the subkey", err, s, sub)
	}

	forged := strings.Replace(manifest, "1111", "2222", 1)
	cases := []struct {
		name   string
		sig    []byte
		body   string
		reason error
		says   string
	}{
		{"forged manifest", sig, forged, ErrBadSignature, "does not match"},
		{"one byte more", sig, manifest + "\n", ErrBadSignature, "does not match"},
		{"key not in the keyring", g.Sign(other, []byte(manifest)), manifest, ErrUnknownKey, "not in the keyring"},
		{"SHA-1", g.Sign(fpr, []byte(manifest), "--digest-algo", "SHA1"), manifest, ErrWeakHash, "SHA-1"},
		{"not a signature", []byte("hello, world\n"), manifest, ErrUnparsable, "not an OpenPGP signature"},
		{"empty", nil, manifest, ErrUnparsable, "no signature packet"},
		{"a public key", g.Export(fpr), manifest, ErrUnparsable, "not a \"PGP SIGNATURE\""},
		{"truncated armour", sig[:len(sig)/2], manifest, ErrUnparsable, ""},
	}
	for _, tt := range cases {
		_, _, err := verify(k, tt.sig, tt.body, now)
		if !errors.Is(err, ErrSignature) || !errors.Is(err, tt.reason) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%s: %v, want %v saying %q", tt.name, err, tt.reason, tt.says)
		}
	}

	// A signature dated well after this clock (the signer's clock ahead
	// by more than MaxClockSkew) is refused; one slightly ahead is not.
	if _, _, err := verify(k, sig, manifest, now.Add(-time.Hour)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("a signature an hour in the future: %v", err)
	}
	if _, _, err := verify(k, sig, manifest, now.Add(-MaxClockSkew/2)); err != nil {
		t.Errorf("a signature within the clock skew: %v", err)
	}
}

// TestExpiredKey: a key that expired is refused, although the signature
// was made while it was valid (its date is the signer's word).
func TestExpiredKey(t *testing.T) {
	t.Parallel()
	g := testgpg.New(t)
	born := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	fpr := g.KeyAt("Old Key <old@example.org>", "ed25519", "1d", born)
	k := keyring(t, g.Export(fpr))
	sig := g.SignAt(fpr, []byte(manifest), born.Add(12*time.Hour))
	// Then, it verified.
	if _, s, err := verify(k, sig, manifest, born.Add(13*time.Hour)); err != nil || s.Fingerprint != fpr {
		t.Fatalf("while the key was valid: %v %+v", err, s)
	}
	_, _, err := verify(k, sig, manifest, time.Now())
	if !errors.Is(err, ErrKeyExpired) || !strings.Contains(err.Error(), "2020-01-02T00:00") || !strings.Contains(err.Error(), fpr) {
		t.Errorf("an expired key: %v, want ErrKeyExpired naming the key and when it expired", err)
	}
}

// TestClearsigned: a clearsigned manifest's signed text is what it gives;
// an altered one, unsigned text around it and a plain manifest are refused.
func TestClearsigned(t *testing.T) {
	t.Parallel()
	g := testgpg.New(t)
	fpr := g.Key("Release Team <release@example.org>", "never")
	other := g.Key("Someone Else <else@example.org>", "never")
	k := keyring(t, g.Export(fpr))
	now := time.Now()
	// A line starting with "-" is dash-escaped in the message.
	text := manifest + "-not-a-manifest-line\n"
	signed := g.ClearSign(fpr, []byte(text))
	got, s, err := k.Clearsigned(signed, now)
	if err != nil {
		t.Fatal(err)
	}
	// The line end before the signature is not part of the signed text
	// (RFC 9580, section 7.1).
	if string(got) != strings.TrimSuffix(text, "\n") || s.Fingerprint != fpr {
		t.Errorf("got %q by %+v, want the signed text by %s", got, s, fpr)
	}
	cases := []struct {
		name   string
		data   []byte
		reason error
	}{
		{"altered", bytes.Replace(signed, []byte("1111"), []byte("2222"), 1), ErrBadSignature},
		{"text before", append([]byte("ffff  evil.exe\n"), signed...), ErrUnparsable},
		{"text after", append(append([]byte{}, signed...), "ffff  evil.exe\n"...), ErrUnparsable},
		{"plain manifest", []byte(manifest), ErrUnparsable},
		{"key not in the keyring", g.ClearSign(other, []byte(text)), ErrUnknownKey},
	}
	for _, tt := range cases {
		if _, _, err := k.Clearsigned(tt.data, now); !errors.Is(err, tt.reason) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.reason)
		}
	}
}

func TestReadKeyring(t *testing.T) {
	t.Parallel()
	g := testgpg.New(t)
	a := g.Key("A <a@example.org>", "never")
	b := g.Key("B <b@example.org>", "never")
	// Two blocks one after the other, as `cat a.asc b.asc` makes.
	k := keyring(t, g.Export(a), g.Export(b))
	if got := k.Fingerprints(); len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("fingerprints %v, want %s %s", got, a, b)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, tt := range []struct {
		name, file, says string
	}{
		{"missing", filepath.Join(dir, "nope.asc"), "does not exist"},
		{"a directory", dir, "not a regular file"},
		{"a device", "/dev/zero", "not a regular file"},
		{"empty", write("empty.asc", nil), "holds no OpenPGP public key"},
		{"not a key", write("text.asc", []byte("hello\n")), "holds no OpenPGP public key"},
		{"private key", write("secret.asc", g.Run(nil, "--armor", "--export-secret-keys", a)), "PRIVATE"},
		{"a signature", write("sig.asc", g.Sign(a, []byte("x"))), "not a \"PGP PUBLIC KEY BLOCK\""},
	} {
		_, err := ReadKeyring(tt.file)
		if err == nil || !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), tt.file) {
			t.Errorf("%s: %v, want an error naming the file and saying %q", tt.name, err, tt.says)
		}
	}
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
