package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinaryExitCodes builds the real binary and checks that the process
// exit codes are the contract's, as a release hook or cron would see them.
func TestBinaryExitCodes(t *testing.T) {
	bin := binary(t)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("database:\n  url: postgres://sentry:s3cr3t-pw@127.0.0.1:1/bouncer?connect_timeout=3\n"+
		"master:\n  url: http://127.0.0.1:1/pub\nreleases:\n  dir: /r/{release}/\n  products: [\"P-{release}\"]\nchecks:\n  contact: ops@example.org\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, ""},
		{[]string{"prime", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"nonsense"}, 2, "unknown command"},
		{[]string{"db", "migrate", "--config", cfg}, 1, "127.0.0.1:1"},
		{[]string{"prime", "--release", "1.5", "--config", cfg}, 1, "database unreachable"},
	}
	for _, tt := range tests {
		cmd := exec.Command(bin, tt.args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if code != tt.code || !strings.Contains(string(out), tt.want) {
			t.Errorf("sentry %v: exit %d, want %d with %q:\n%s", tt.args, code, tt.code, tt.want, out)
		}
		if strings.Contains(string(out), "s3cr3t-pw") {
			t.Errorf("sentry %v printed the password:\n%s", tt.args, out)
		}
	}
}
