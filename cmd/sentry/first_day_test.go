package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
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
	t.Parallel()
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{}}
	m, err := localmirror.NewStatic("a-mirror-with-a-rather-long-name-for-tables", rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	w := newWorld(t, "", m)
	for p, b := range w.Rel.Files {
		m.Put(w.Rel, p, b)
	}
	env := []string{}
	run := func(args ...string) (string, int) {
		t.Helper()
		return runBinary(t, env, append(args, "--config", w.Config)...)
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
	w.Settings(t, &factory.MirrorSettingsOpts{MirrorID: w.Mirrors[m.Name], PrimeMode: "trigger", TriggerURL: "https://m.example.org/hook"})
	for _, args := range [][]string{{"prime", "--release", "1.5"}, {"sweep"}, {"run"}} {
		out, code := run(args...)
		if code != 1 {
			t.Errorf("%v with a trigger mirror and no secret: exit %d", args, code)
		}
		oneLine(t, strings.Join(args, " "), out, "configuration error: no trigger secret is configured")
	}
	w.Exec(t, `DELETE FROM sentry_mirror_settings`)

	// A schema newer than the binary: every command but db migrate
	// refuses, saying to upgrade.
	w.Exec(t, `INSERT INTO sentry_schema_migrations (version, name) VALUES (9999, 'from_the_future')`)
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
