package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/sentry/demo/faultmirror"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/hook"
)

// The secrets of TestSecretsNeverLeak. Distinctive, so that a leak cannot
// hide behind a common word.
const (
	leakDBPassword    = "db-pw-Zq81xLk4"
	leakHookSecret    = "hook-secret-Rt55vWm2Ya9c"
	leakTriggerSecret = "trigger-secret-Hn27pQe8Ub3d"
)

// outputs collects everything a user or an operator can see: command
// output, logs, errors, reports and pages. Add a source with add.
type outputs struct {
	items []struct{ name, text string }
}

func (o *outputs) add(name, text string) {
	o.items = append(o.items, struct{ name, text string }{name, text})
}

// TestSecretsNeverLeak runs a whole job through the built binary with a
// database password (in the config file and in SENTRY_DATABASE_URL), a
// hook secret (SENTRY_HOOK_SECRET) and a trigger secret (config file), at
// debug level, including failures, and scans every output for them.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{}}
	for i := range 4 {
		p := fmt.Sprintf("win32/xpi/lang-%d.xpi", i)
		rel.Files[p] = localmirror.Content(p, 5000)
	}
	w := newBareWorld(t, rel)
	master := w.Master
	trig, err := localmirror.NewTrigger("trig", rel, []byte(leakTriggerSecret), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trig.Close() })
	// A trigger mirror that refuses our signature: the failure is logged
	// and recorded, never with the secret.
	wrong, err := localmirror.NewTrigger("trig-wrong-secret", rel, []byte("some-other-secret-entirely"), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wrong.Close() })
	fault, err := faultmirror.New(faultmirror.RedirectLoop, rel, "win32/xpi/lang-2.xpi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fault.Close() })

	u, err := url.Parse(w.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), leakDBPassword) // the test cluster trusts; the password is carried all the same
	dbURL := u.String()
	dir := t.TempDir()
	body := fmt.Sprintf(`database:
  url: %s
master:
  url: %s
releases:
  dir: /firefox/releases/{release}/
  products: ["Firefox-{release}"]
  default_langs: ["0", "1", "2", "3"]
checks:
  contact: ops@example.org
  per_mirror_rate: 100000
  retries: 0
prime:
  deadline: 3s
  poll_interval: 50ms
  poll_max: 200ms
http:
  listen: 127.0.0.1:0
trigger:
  secret: %s
schedule:
  sweep: "0 0 1 1 *"
  deep_sweep: "0 0 1 1 *"
shutdown_grace: 2s
`, dbURL, master.URL, leakTriggerSecret)
	cfg := w.Config
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"SENTRY_HOOK_SECRET=" + leakHookSecret}
	var out outputs
	run := func(name string, wantCode int, extraEnv []string, config string, args ...string) {
		t.Helper()
		stdout, stderr, code := runSentry(t, config, append(env, extraEnv...), args...)
		if code != wantCode {
			t.Errorf("sentry %s: exit %d, want %d\n%s\n%s", strings.Join(args, " "), code, wantCode, stdout, stderr)
		}
		out.add(name+" (stdout)", stdout)
		out.add(name+" (stderr)", stderr)
	}

	run("db migrate", 0, nil, cfg, "db", "migrate", "--verbose")
	w.Product(t, "Firefox-1.5", nil, location{OS: "win", Path: "/firefox/releases/1.5/win32/xpi/lang-:lang.xpi"})
	for _, m := range []struct{ name, url, mode, trigger string }{
		{"trig", trig.URL, "trigger", trig.TriggerURL},
		{"trig-wrong-secret", wrong.URL, "trigger", wrong.TriggerURL},
		{fault.Name, fault.URL, "pull", ""},
	} {
		w.AddMirror(t, &factory.MirrorOpts{Name: m.name, BaseURL: m.url,
			Settings: &factory.MirrorSettingsOpts{PrimeMode: m.mode, TriggerURL: m.trigger}})
	}
	run("prime", 0, nil, cfg, "prime", "--release", "1.5", "--verbose")
	if good, _ := trig.Triggers(); good != 1 {
		t.Fatalf("the trigger mirror got %d good triggers: the secret was not used", good)
	}
	if _, rejected := wrong.Triggers(); rejected == 0 {
		t.Fatal("the trigger mirror with another secret rejected nothing")
	}
	run("prime json", 0, nil, cfg, "prime", "--release", "1.5", "--force", "--format", "json", "--verbose")
	run("sweep", 0, nil, cfg, "sweep", "--verbose")
	run("deep sweep", 0, nil, cfg, "sweep", "--deep", "--format", "json", "--verbose")
	run("report", 0, nil, cfg, "report", "--verbose")
	run("report json", 0, nil, cfg, "report", "--format", "json")
	run("report csv", 0, nil, cfg, "report", "--format", "csv")
	run("report mirror", 0, nil, cfg, "report", "--mirror", "trig-wrong-secret", "--format", "json")
	run("report release", 0, nil, cfg, "report", "--release", "1.5")

	// Failures: the database unreachable (URL in the file, then in the
	// environment), the configuration wrong.
	unreachable := strings.Replace(dbURL, "@"+u.Host, "@127.0.0.1:1", 1) + "&connect_timeout=3"
	badCfg := filepath.Join(dir, "unreachable.yaml")
	if err := os.WriteFile(badCfg, []byte(strings.Replace(body, dbURL, unreachable, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	run("prime, database unreachable", 1, nil, badCfg, "prime", "--release", "1.5", "--verbose")
	run("db migrate, database unreachable (env)", 1, []string{"SENTRY_DATABASE_URL=" + unreachable}, cfg, "db", "migrate", "--verbose")
	run("sweep, database URL malformed (env)", 1,
		[]string{"SENTRY_DATABASE_URL=postgres://sentry:" + leakDBPassword + "@127.0.0.1:notaport/x"}, cfg, "sweep")
	typoCfg := filepath.Join(dir, "typo.yaml")
	if err := os.WriteFile(typoCfg, []byte(body+"hook:\n  secert: "+leakHookSecret+"x\n  secret: short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run("configuration error", 1, nil, typoCfg, "report")

	// The daemon: its logs, /healthz, the status page, the API, metrics,
	// and the hook, refused and accepted.
	w.daemonEnv = []string{"SENTRY_HOOK_SECRET=" + leakHookSecret}
	d := w.startDaemon(t, "daemon")
	addr := ""
	re := regexp.MustCompile(`listen=(127\.0\.0\.1:\d+)`)
	deadline := time.After(90 * time.Second)
	for addr == "" {
		select {
		case l := <-d.lines:
			if m := re.FindStringSubmatch(l); m != nil {
				addr = m[1]
			}
		case <-d.exited:
			t.Fatalf("sentry run exited: %v\n%s", d.err, d.logText())
		case <-deadline:
			t.Fatalf("sentry run never said where it listens:\n%s", d.logText())
		}
	}
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(path string) {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return // not served (yet): nothing to scan
		}
		out.add("GET "+path, fmt.Sprintf("%d %v\n%s", resp.StatusCode, resp.Header, b))
	}
	for _, p := range []string{"/healthz", "/", "/mirrors/trig-wrong-secret", "/releases/1.5", "/api/mirrors",
		"/api/mirrors/trig", "/api/releases", "/api/releases/1.5", "/api/history", "/metrics"} {
		get(p)
	}
	hookCall := func(name, sig string, payload []byte, ts string) int {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/hooks/release", bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Sentry-Timestamp", ts)
		req.Header.Set("X-Sentry-Signature", sig)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out.add(name, fmt.Sprintf("%d %v\n%s", resp.StatusCode, resp.Header, b))
		return resp.StatusCode
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	payload := []byte(`{"release": "1.5"}`)
	if code := hookCall("hook, bad signature", hook.Sign([]byte("not-the-secret-at-all"), ts, payload), payload, ts); code != http.StatusUnauthorized {
		t.Errorf("hook with a bad signature: %d, want 401", code)
	}
	if code := hookCall("hook, bad release", hook.Sign([]byte(leakHookSecret), ts, []byte(`{"release": "../x"}`)), []byte(`{"release": "../x"}`), ts); code == http.StatusAccepted {
		t.Errorf("hook with a hostile release name accepted")
	}
	if code := hookCall("hook", hook.Sign([]byte(leakHookSecret), ts, payload), payload, ts); code != http.StatusAccepted {
		t.Errorf("hook: %d, want 202", code)
	}
	if code := hookCall("hook, replayed", hook.Sign([]byte(leakHookSecret), ts, payload), payload, ts); code != http.StatusUnauthorized {
		t.Errorf("replayed hook: %d, want 401", code)
	}
	// Wait for the hook's prime to end, so that its logs are scanned too.
	deadline = time.After(90 * time.Second)
	for primed := false; !primed; {
		select {
		case l := <-d.lines:
			primed = strings.Contains(l, "prime finished")
		case <-d.exited:
			t.Fatalf("sentry run exited: %v\n%s", d.err, d.logText())
		case <-deadline:
			t.Fatalf("the hook's prime did not finish:\n%s", d.logText())
		}
	}
	get("/")
	get("/metrics")
	if err := d.stop(t); err != nil {
		t.Errorf("sentry run: %v", err)
	}
	out.add("sentry run (stderr)", d.logText())

	// What sentry wrote where operators read it.
	var dbText string
	w.Query(t, `SELECT coalesce(string_agg(detail || ' ' || cache_status, E'\n'), '') FROM sentry_checks`, &dbText)
	out.add("sentry_checks", dbText)
	w.Query(t, `SELECT coalesce(string_agg(outcome || ' ' || coalesce(reason, ''), E'\n'), '') FROM sentry_runs`, &dbText)
	out.add("sentry_runs", dbText)
	w.Query(t, `SELECT coalesce(string_agg(reason, E'\n'), '') FROM sentry_log`, &dbText)
	out.add("sentry_log", dbText)

	total := 0
	for _, o := range out.items {
		total += len(o.text)
		for _, secret := range []string{leakDBPassword, leakHookSecret, leakTriggerSecret} {
			if i := strings.Index(o.text, secret); i >= 0 {
				t.Errorf("%s shows a secret: …%s…", o.name, o.text[max(i-80, 0):min(i+len(secret)+20, len(o.text))])
			}
		}
	}
	t.Logf("scanned %d outputs, %d bytes", len(out.items), total)
	// The scan is only worth something if there was much to scan.
	if len(out.items) < 30 || total < 5000 {
		t.Errorf("only %d outputs, %d bytes scanned", len(out.items), total)
	}
}
