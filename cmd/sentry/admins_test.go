package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/smtptest"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// adminWorld is a bouncer database, a master and a config for the tests
// of mirror admins, run through the built binary.
type adminWorld struct {
	*world
	env []string
}

// Secrets the admin tests configure, none of which may reach a mail.
const (
	testSMTPPassword = "sm7p p@ss/w#rd%&:é"
	testHookSecret   = "hook-secret-the-mails-never-show"
)

func newAdminWorld(t *testing.T, extra string) *adminWorld {
	t.Helper()
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{}}
	for _, p := range []string{"win32/en-US/Firefox Setup 1.5.exe", "linux-x86_64/en-US/firefox-1.5.tar.bz2"} {
		rel.Files[p] = localmirror.Content(p, 20_000)
	}
	w := newBareWorld(t, rel)
	cfg := fmt.Sprintf(`database:
  url: %s
master:
  url: %s
releases:
  dir: "/firefox/releases/{release}/"
  products: ["Firefox-{release}"]
http:
  public_url: https://status.example.org/sentry
guard:
  max_down_fraction: 0.9
%s`, w.DBURL, w.Master.URL, extra)
	if err := os.WriteFile(w.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	aw := &adminWorld{world: w, env: []string{"SENTRY_HOOK_SECRET=" + testHookSecret}}
	if strings.Contains(extra, "user: sentry") { // the relay wants a password
		aw.env = append(aw.env, "SENTRY_SMTP_PASSWORD="+testSMTPPassword)
	}
	aw.run(t, 0, "db", "migrate")
	w.Product(t, "Firefox-1.5", nil, location{OS: "win", Path: "/firefox/releases/1.5/win32/:lang/Firefox Setup 1.5.exe"},
		location{OS: "linux", Path: "/firefox/releases/1.5/linux-x86_64/:lang/firefox-1.5.tar.bz2"})
	return aw
}

// run runs the binary and wants exit code want; it returns stdout.
func (w *adminWorld) run(t *testing.T, want int, args ...string) string {
	t.Helper()
	stdout, stderr, code := runSentry(t, w.Config, w.env, args...)
	if code != want {
		t.Fatalf("sentry %s: exit %d, want %d\n%s\n%s", strings.Join(args, " "), code, want, stdout, stderr)
	}
	return stdout
}

// addMirror registers a mirror with its admin's contact.
func (w *adminWorld) addMirror(t *testing.T, name, baseURL, contact string) {
	t.Helper()
	w.Site.AddMirror(t, &factory.MirrorOpts{Name: name, BaseURL: baseURL, Rating: factory.Ptr(50),
		Settings: &factory.MirrorSettingsOpts{Contact: contact}})
}

// adminRow is a mirror of `sentry report --format json`, as these tests
// read it.
type adminRow struct {
	Name           string   `json:"name"`
	State          string   `json:"state"`
	Degraded       bool     `json:"degraded"`
	LastReason     string   `json:"last_reason"`
	BrokenFamilies []string `json:"broken_families"`
	TLS            *struct {
		Issuer   string    `json:"issuer"`
		Names    []string  `json:"names"`
		NotAfter time.Time `json:"not_after"`
		Error    string    `json:"error"`
		Warning  bool      `json:"warning"`
	} `json:"tls"`
	Maintenance *struct {
		Until  time.Time `json:"until"`
		Reason string    `json:"reason"`
	} `json:"maintenance"`
	Returning bool `json:"returning"`
}

func (w *adminWorld) report(t *testing.T) map[string]adminRow {
	t.Helper()
	var rep struct {
		Mirrors []adminRow `json:"mirrors"`
	}
	out := w.run(t, 0, "report", "--format", "json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report JSON: %v\n%s", err, out)
	}
	rows := map[string]adminRow{}
	for _, m := range rep.Mirrors {
		rows[m.Name] = m
	}
	return rows
}

// mailTo returns the mails to addr.
func mailTo(ms []smtptest.Message, addr string) []smtptest.Message {
	var out []smtptest.Message
	for _, m := range ms {
		for _, to := range m.EnvelopeTo {
			if to == addr {
				out = append(out, m)
			}
		}
	}
	return out
}

// noSecretIn fails when a mail holds a configured secret, in any form.
func noSecretIn(t *testing.T, ms []smtptest.Message, dbURL string) {
	t.Helper()
	secrets := []string{testSMTPPassword, "p@ss/w#rd", testHookSecret}
	if i := strings.Index(dbURL, "://"); i >= 0 {
		if at := strings.LastIndexByte(dbURL, '@'); at > i {
			if _, pw, ok := strings.Cut(dbURL[i+3:at], ":"); ok && len(pw) >= 6 {
				secrets = append(secrets, pw)
			}
		}
	}
	for _, m := range ms {
		for _, s := range secrets {
			if bytes.Contains(m.Raw, []byte(s)) || strings.Contains(m.Body, s) {
				t.Errorf("mail %q holds a secret", m.Header.Get("Subject"))
			}
		}
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
