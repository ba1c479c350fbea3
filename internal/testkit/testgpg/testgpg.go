// Package testgpg runs Debian's gpg (gnupg) for tests: keys made and
// signatures written by the reference implementation, in a throwaway
// GNUPGHOME, never by the code under test. Keys have no passphrase
// (--batch, --pinentry-mode loopback, an empty --passphrase); the agent gpg starts
// is stopped when the test ends.
//
// A test calling New is skipped when gpg is not installed, unless CI is
// set (then it fails: CI installs gnupg).
package testgpg

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// GPG is a throwaway gpg home.
type GPG struct {
	t    testing.TB
	Home string
}

// New makes a gpg home that is removed when the test ends.
func New(t testing.TB) *GPG {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("gpg is not installed (apt-get install gnupg)")
		}
		t.Fatal("gpg is not installed (apt-get install gnupg), and CI needs it")
	}
	// A short path: gpg-agent's socket lives in the home, and a socket's
	// path is limited to about 100 bytes.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	g := &GPG{t: t, Home: home}
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
		cmd.Env = g.env()
		_ = cmd.Run()
		os.RemoveAll(home)
	})
	return g
}

func (g *GPG) env() []string { return append(os.Environ(), "GNUPGHOME="+g.Home, "LC_ALL=C") }

// Run runs gpg with args (after --batch and the loopback pinentry) and
// gives its standard output; a failure fails the test.
func (g *GPG) Run(stdin []byte, args ...string) []byte {
	g.t.Helper()
	cmd := exec.Command("gpg", append([]string{"--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	cmd.Env = g.env()
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		g.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// at is the --faked-system-time argument for t (zero: none).
func at(t time.Time) []string {
	if t.IsZero() {
		return nil
	}
	return []string{"--faked-system-time", t.UTC().Format("20060102T150405")}
}

// Key makes an ed25519 signing key for uid, expiring as gpg's expire
// argument says ("never", "1d", ...), and gives its fingerprint.
func (g *GPG) Key(uid, expire string) string {
	return g.KeyAt(uid, "ed25519", expire, time.Time{})
}

// KeyAt makes a key of algo (ed25519, rsa3072, ...) as if the clock said
// when (zero: now), so that "1d" makes a key that expired long ago.
func (g *GPG) KeyAt(uid, algo, expire string, when time.Time) string {
	g.t.Helper()
	g.Run(nil, append(at(when), "--quick-gen-key", uid, algo, "sign", expire)...)
	out := g.Run(nil, "--with-colons", "--list-keys", uid)
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			return f[9]
		}
	}
	g.t.Fatalf("no fingerprint for %q in:\n%s", uid, out)
	return ""
}

// Export is the armoured public keys of fprs, as `gpg --armor --export`.
func (g *GPG) Export(fprs ...string) []byte {
	g.t.Helper()
	return g.Run(nil, append([]string{"--armor", "--export"}, fprs...)...)
}

// Sign is an armoured detached signature by key fpr of data; extra adds
// gpg options (such as "--digest-algo", "SHA1").
func (g *GPG) Sign(fpr string, data []byte, extra ...string) []byte {
	return g.SignAt(fpr, data, time.Time{}, extra...)
}

// SignAt is Sign as if the clock said when (zero: now).
func (g *GPG) SignAt(fpr string, data []byte, when time.Time, extra ...string) []byte {
	g.t.Helper()
	args := append(at(when), "--local-user", fpr, "--armor", "--detach-sign")
	return g.Run(data, append(args, extra...)...)
}

// ClearSign is data clearsigned by key fpr.
func (g *GPG) ClearSign(fpr string, data []byte) []byte {
	g.t.Helper()
	return g.Run(data, "--local-user", fpr, "--clearsign")
}
