package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/sentry/config"
)

// TestSystemdUnitMatchesTheBinary: the example unit's ExecStart is a
// command line the binary accepts, its EnvironmentFile example sets
// exactly the variables sentry reads, and systemd itself finds nothing to
// say of it (systemd-analyze verify: every key in its section).
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
	verifyUnit(t, string(unit), binary(t))
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

// verifyUnit runs `systemd-analyze verify` on a copy of unit whose
// ExecStart runs bin (the unit's /usr/local/bin/sentry is not installed
// here), and fails on anything it says of the unit: an unknown key, a key
// in the wrong section (ignored by systemd), a bad value. Without
// systemd-analyze (Debian's systemd package) the check is skipped, except
// in CI, where .ci/run installs it.
func verifyUnit(t *testing.T, unit, bin string) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is not installed (CI is set: .ci/run installs it with apt-get install systemd)")
		}
		t.Log("systemd-analyze is not installed (apt-get install systemd): the unit is not verified")
		return
	}
	path := filepath.Join(t.TempDir(), "sentry.service")
	local := strings.Replace(unit, "ExecStart=/usr/local/bin/sentry ", "ExecStart="+bin+" ", 1)
	if local == unit {
		t.Fatal("the unit's ExecStart does not run /usr/local/bin/sentry")
	}
	if err := os.WriteFile(path, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	var said []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, path) || strings.Contains(l, "sentry.service") {
			said = append(said, l)
		}
	}
	if err != nil || len(said) > 0 {
		t.Errorf("systemd-analyze verify docs/systemd/sentry.service (%v):\n%s", err, out)
	}
}
