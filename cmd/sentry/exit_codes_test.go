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
	t.Parallel()
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
		{[]string{"prime", "--bogus"}, 2, "unknown flag --bogus"},
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

// TestBinaryDatabaseURLNeedingEncoding: a password with an unencoded '#',
// '@' or '/' is refused with an error saying to percent-encode it, exit 1,
// and not a character of it shown; from SENTRY_DATABASE_URL the error
// names the variable, not the file.
func TestBinaryDatabaseURLNeedingEncoding(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, pw := range []string{"prod#2024", "Pa@ss@W0rd", "s3/cr3t?x"} {
		url := "postgres://sentry:" + pw + "@127.0.0.1:1/bouncer?connect_timeout=3"
		base := "master:\n  url: http://127.0.0.1:1/pub\nreleases:\n  dir: /r/{release}/\n  products: [\"P-{release}\"]\nchecks:\n  contact: ops@example.org\n"
		inFile := filepath.Join(dir, "file.yaml")
		if err := os.WriteFile(inFile, []byte(base+"database:\n  url: \""+url+"\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		inEnv := filepath.Join(dir, "env.yaml")
		if err := os.WriteFile(inEnv, []byte(base+"database:\n  url: postgres://other@127.0.0.1:1/x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			cfg, names string
			env        []string
		}{{inFile, "file.yaml: database.url", nil}, {inEnv, "SENTRY_DATABASE_URL", []string{"SENTRY_DATABASE_URL=" + url}}} {
			for _, args := range [][]string{{"db", "migrate"}, {"sweep"}, {"report"}} {
				out, code := runBinary(t, c.env, append(args, "--config", c.cfg)...)
				if code != 1 || !strings.Contains(out, "percent-encoded") || !strings.Contains(out, c.names) {
					t.Errorf("password %q, sentry %v (%s): exit %d, want 1 saying to percent-encode and naming %s:\n%s", pw, args, c.names, code, c.names, out)
				}
				if c.env != nil && strings.Contains(out, "env.yaml") {
					t.Errorf("sentry %v blames the file for the environment's URL:\n%s", args, out)
				}
				for _, piece := range []string{pw, pw[:4], pw[len(pw)-4:]} {
					if strings.Contains(out, piece) {
						t.Errorf("sentry %v printed %q of the password:\n%s", args, piece, out)
					}
				}
			}
		}
	}
}
