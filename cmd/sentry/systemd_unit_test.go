package main

import (
	"os"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/sentry/config"
)

// TestSystemdUnitMatchesTheBinary: the example unit's ExecStart is a
// command line the binary accepts, and its EnvironmentFile example sets
// exactly the variables sentry reads.
func TestSystemdUnitMatchesTheBinary(t *testing.T) {
	t.Parallel()
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
