// Package smtptest runs a real SMTP server for tests: Debian's aiosmtpd
// (python3-aiosmtpd) as a child process on a loopback port, with STARTTLS
// and AUTH when asked, keeping every message it accepts. A test whose
// machine lacks it skips, except in CI (CI set), where .ci/run installs it
// and its absence is a failure.
package smtptest

import (
	"bytes"
	_ "embed"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/testnet"
)

//go:embed smtpd.py
var script []byte

// Options of a server.
type Options struct {
	// CertFile and KeyFile, when set, offer (and require) STARTTLS.
	CertFile, KeyFile string
	// ImplicitTLS, with CertFile and KeyFile, speaks TLS from the first
	// byte instead (submissions, port 465): no STARTTLS.
	ImplicitTLS bool
	// User and Password, when set, require AUTH.
	User, Password string
	// FailFirst answers the first so many messages 451 (try later).
	FailFirst int
}

// Server is a running SMTP server.
type Server struct {
	Host string // 127.0.0.1
	Port int
	dir  string
}

// Python is the interpreter with aiosmtpd, or the test skips (fails in CI).
func Python(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil && exec.Command(path, "-c", "import aiosmtpd").Run() == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("aiosmtpd is not installed (CI is set: .ci/run installs it with apt-get install python3-aiosmtpd)")
	}
	t.Skip("aiosmtpd is not installed (apt-get install python3-aiosmtpd); set CI to make this a failure")
	return ""
}

// Start starts a server; it stops when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	py := Python(t)
	dir := t.TempDir()
	scriptPath := filepath.Join(dir, "smtpd.py")
	out := filepath.Join(dir, "mail")
	if err := os.WriteFile(scriptPath, script, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	lf, addr := testnet.Listen(t)
	defer lf.Close()
	cmd := exec.Command(py, scriptPath, out)
	cmd.ExtraFiles = []*os.File{lf}
	if o.ImplicitTLS && o.CertFile == "" {
		t.Fatal("smtptest: implicit TLS needs a CertFile and KeyFile")
	}
	implicit := ""
	if o.ImplicitTLS {
		implicit = "1"
	}
	cmd.Env = append(os.Environ(), "SMTPD_CERT="+o.CertFile, "SMTPD_KEY="+o.KeyFile, "SMTPD_USER="+o.User,
		"SMTPD_PASSWORD="+o.Password, "SMTPD_FAIL_FIRST="+strconv.Itoa(o.FailFirst), "SMTPD_IMPLICIT_TLS="+implicit)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("smtpd output:\n%s", logs.String())
		}
	})
	return &Server{Host: "127.0.0.1", Port: addr.Port, dir: out}
}

// Message is one message the server accepted.
type Message struct {
	// EnvelopeFrom and EnvelopeTo are the SMTP envelope; Login the AUTH
	// user ("" for none); TLS whether it came over TLS (STARTTLS, or
	// implicit: Implicit).
	EnvelopeFrom string
	EnvelopeTo   []string
	Login        string
	TLS          bool
	Implicit     bool
	Header       mail.Header
	// Body is the decoded text; Raw the message as received.
	Body string
	Raw  []byte
}

// Messages returns every message accepted so far, in order.
func (s *Server) Messages(t testing.TB) []Message {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(s.dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	var out []Message
	for _, n := range names {
		raw, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		body, _ := io.ReadAll(msg.Body)
		if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			if dec, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body))); err == nil {
				body = dec
			}
		}
		m := Message{EnvelopeFrom: msg.Header.Get("X-Envelope-From"), Login: msg.Header.Get("X-Auth-Login"),
			TLS: msg.Header.Get("X-TLS") == "yes", Implicit: msg.Header.Get("X-TLS-Implicit") == "yes", Header: msg.Header, Body: strings.ReplaceAll(string(body), "\r\n", "\n"), Raw: raw}
		for _, to := range strings.Split(msg.Header.Get("X-Envelope-To"), ",") {
			m.EnvelopeTo = append(m.EnvelopeTo, strings.TrimSpace(to))
		}
		out = append(out, m)
	}
	return out
}

// Wait waits, up to timeout, until at least n messages arrived, and
// returns them all.
func (s *Server) Wait(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ms := s.Messages(t)
		if len(ms) >= n {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mails arrived within %s, want %d", len(ms), timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
