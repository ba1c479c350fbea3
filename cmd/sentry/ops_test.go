package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// oneLine wants out to be exactly one line holding want.
func oneLine(t *testing.T, what, out, want string) {
	t.Helper()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, want) {
		t.Errorf("%s: want one line with %q, got:\n%s", what, want, out)
	}
}

// TestBinaryOperatorsFirstDay drives the binary as a new operator would and
// checks the exit codes and messages of what used to go wrong: a prime that
// matches nothing, an unknown mirror, a trigger mirror without a secret, a
// schema newer than the binary, JSON logs, --mirror and --wide.
func TestBinaryOperatorsFirstDay(t *testing.T) {
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{}}
	m, err := localmirror.NewStatic("a-mirror-with-a-rather-long-name-for-tables", rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	w := newWorld(t, "", m)
	for p, b := range w.rel.Files {
		m.Put(w.rel, p, b)
	}
	env := []string{}
	run := func(args ...string) (string, int) {
		t.Helper()
		return runBinary(t, env, append(args, "--config", w.cfg)...)
	}

	// A release with no bouncer product: exit 1, one line naming the
	// pattern and what the bouncer holds; the mirror is not asked.
	out, code := run("prime", "--release", "3.0")
	if code != 1 {
		t.Errorf("prime of a release without products: exit %d", code)
	}
	oneLine(t, "prime --release 3.0", out,
		`release 3.0 matches no bouncer product: releases.products "Firefox-{release}" gives "Firefox-3.0"`)
	if n := m.Stats().Requests; n != 0 {
		t.Errorf("the mirror was asked %d times for a release with no product", n)
	}

	// An unknown --mirror: exit 1, one line naming it and the active ones.
	for _, args := range [][]string{{"sweep", "--mirror", "nope"}, {"prime", "--release", "1.5", "--mirror", "nope"}} {
		out, code := run(args...)
		if code != 1 {
			t.Errorf("%v: exit %d", args, code)
		}
		oneLine(t, strings.Join(args, " "), out, `no active mirror named "nope"`)
	}

	// --mirror does the named mirror; --wide keeps its whole name.
	out, code = run("prime", "--release", "1.5", "--mirror", "a-mirror-with-a-rather-long-name-for-tables", "--wide")
	if code != 0 || !strings.Contains(out, "a-mirror-with-a-rather-long-name-for-tables pull    ok") {
		t.Errorf("prime --mirror --wide: exit %d\n%s", code, out)
	}
	out, code = run("sweep", "--mirror", "a-mirror-with-a-rather-long-name-for-tables")
	if code != 0 || !strings.Contains(out, "a-mirror-with-a…") {
		t.Errorf("sweep --mirror (80 columns): exit %d\n%s", code, out)
	}

	// JSON logs, at the level asked for.
	out, code = run("sweep", "--log-format", "json", "--log-level", "info", "--format", "json")
	if code != 0 {
		t.Fatalf("sweep with JSON logs: exit %d\n%s", code, out)
	}
	logged := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, `{"time":`) {
			var rec map[string]any
			if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["level"] == "DEBUG" {
				t.Errorf("log line %q: %v", l, err)
			}
			logged++
		}
	}
	if logged == 0 {
		t.Errorf("no JSON log line:\n%s", out)
	}

	// report of a mirror or release that does not exist: exit 1, one line.
	for _, args := range [][]string{{"report", "--mirror", "nope"}, {"report", "--release", "9.9"}} {
		out, code := run(args...)
		if code != 1 {
			t.Errorf("%v: exit %d", args, code)
		}
		oneLine(t, strings.Join(args, " "), out, "not found")
	}

	// A trigger mirror without a trigger secret: a configuration error at
	// the start of prime, sweep and run.
	w.exec(t, `INSERT INTO sentry_mirror_settings (mirror_id, prime_mode, trigger_url)
		SELECT id, 'trigger', 'https://m.example.org/hook' FROM mirror_mirrors`)
	for _, args := range [][]string{{"prime", "--release", "1.5"}, {"sweep"}, {"run"}} {
		out, code := run(args...)
		if code != 1 {
			t.Errorf("%v with a trigger mirror and no secret: exit %d", args, code)
		}
		oneLine(t, strings.Join(args, " "), out, "configuration error: no trigger secret is configured")
	}
	w.exec(t, `DELETE FROM sentry_mirror_settings`)

	// A schema newer than the binary: every command but db migrate
	// refuses, saying to upgrade.
	w.exec(t, `INSERT INTO sentry_schema_migrations (version, name) VALUES (9999, 'from_the_future')`)
	for _, args := range [][]string{{"sweep"}, {"report"}, {"prime", "--release", "1.5"}, {"run"}, {"db", "migrate"}} {
		out, code := run(args...)
		if code != 1 || !strings.Contains(out, "upgrade sentry") || !strings.Contains(out, "9999") {
			t.Errorf("%v on a newer schema: exit %d\n%s", args, code, out)
		}
	}

	// --help: version, exit codes, one flag style.
	out, code = runBinary(t, nil, "--help")
	if code != 0 || !strings.Contains(out, "version") || !strings.Contains(out, "exit codes:") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}

// TestSystemdUnitMatchesTheBinary: the example unit's ExecStart is a
// command line the binary accepts, and its EnvironmentFile example sets
// exactly the variables sentry reads.
func TestSystemdUnitMatchesTheBinary(t *testing.T) {
	unit, err := os.ReadFile("../../docs/systemd/sentry.service")
	if err != nil {
		t.Fatal(err)
	}
	var exec []string
	for _, l := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			exec = strings.Fields(v)
		}
	}
	if len(exec) < 2 || exec[0] != "/usr/local/bin/sentry" || exec[1] != "run" {
		t.Fatalf("ExecStart: %v", exec)
	}
	if out, code := runBinary(t, nil, append(exec[1:], "--help")...); code != 0 || !strings.Contains(out, "usage: sentry run") {
		t.Errorf("sentry %v --help: exit %d\n%s", exec[1:], code, out)
	}
	env, err := os.ReadFile("../../docs/systemd/sentry.env.example")
	if err != nil {
		t.Fatal(err)
	}
	var vars []string
	for _, l := range strings.Split(string(env), "\n") {
		if name, _, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			vars = append(vars, name)
		}
	}
	want := []string{config.EnvDatabaseURL, config.EnvHookSecret, config.EnvTriggerSecret, config.EnvNotifySecret, config.EnvSMTPPassword}
	if strings.Join(vars, " ") != strings.Join(want, " ") {
		t.Errorf("sentry.env.example sets %v, want %v", vars, want)
	}
}
