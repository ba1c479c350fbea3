package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// Unit tests of the parts that need no running server.

func TestChildEnvAllowlist(t *testing.T) {
	t.Setenv("PGPASSWORD", "secret")
	t.Setenv("PGHOST", "elsewhere")
	t.Setenv("PGDATA", "/nowhere")
	t.Setenv("SENTRY_TEST_DATABASE_URL", "postgres://u:secret@h/db")
	t.Setenv("PATH", "/usr/bin:/bin")
	env := childEnv("/home/x")
	joined := strings.Join(env, "\n")
	for _, bad := range []string{"PGPASSWORD", "PGHOST", "PGDATA", "SENTRY_TEST_DATABASE_URL", "secret"} {
		if strings.Contains(joined, bad) {
			t.Errorf("child environment leaks %s:\n%s", bad, joined)
		}
	}
	for _, want := range []string{"PATH=/usr/bin:/bin", "HOME=/home/x", "LC_ALL=C"} {
		if !strings.Contains(joined, want) {
			t.Errorf("child environment lacks %s:\n%s", want, joined)
		}
	}
}

// fakeBinDir makes dir with executable stubs of the named programs.
func fakeBinDir(t *testing.T, dir string, progs ...string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range progs {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFindBinDir(t *testing.T) {
	root := t.TempDir()
	all := []string{"initdb", "pg_ctl", "postgres"}
	envDir := fakeBinDir(t, filepath.Join(root, "env"), all...)
	partial := fakeBinDir(t, filepath.Join(root, "partial"), "initdb", "pg_ctl")
	cfgDir := fakeBinDir(t, filepath.Join(root, "cfg"), all...)
	glob := filepath.Join(root, "lib")
	fakeBinDir(t, filepath.Join(glob, "9.6", "bin"), all...)
	v15 := fakeBinDir(t, filepath.Join(glob, "15", "bin"), all...)
	fakeBinDir(t, filepath.Join(glob, "16", "bin"), "initdb") // incomplete: ignored
	fakeBinDir(t, filepath.Join(glob, "notaversion", "bin"), all...)
	pathDir := fakeBinDir(t, filepath.Join(root, "path"), all...)
	linkDir := filepath.Join(root, "links")
	if err := os.Mkdir(linkDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(pathDir, "initdb"), filepath.Join(linkDir, "initdb")); err != nil {
		t.Fatal(err)
	}
	noLook := func(string) (string, error) { return "", exec.ErrNotFound }
	look := func(dir string) func(string) (string, error) {
		return func(name string) (string, error) { return filepath.Join(dir, name), nil }
	}
	cfg := func(dir string) func() string { return func() string { return dir } }

	tests := []struct {
		name    string
		s       binSearch
		want    string
		wantErr bool
	}{
		{"env wins", binSearch{envDir: envDir, pgConfig: cfg(cfgDir), globRoot: glob, lookPath: look(pathDir)}, envDir, false},
		{"env incomplete is an error", binSearch{envDir: partial, pgConfig: cfg(cfgDir), globRoot: glob}, "", true},
		{"pg_config", binSearch{pgConfig: cfg(cfgDir), globRoot: glob, lookPath: look(pathDir)}, cfgDir, false},
		{"pg_config incomplete falls through", binSearch{pgConfig: cfg(partial), globRoot: glob}, v15, false},
		{"highest complete version", binSearch{pgConfig: cfg(""), globRoot: glob, lookPath: noLook}, v15, false},
		{"PATH", binSearch{globRoot: filepath.Join(root, "missing"), lookPath: look(pathDir)}, pathDir, false},
		{"PATH symlink resolved", binSearch{lookPath: look(linkDir)}, pathDir, false},
		{"nothing", binSearch{globRoot: filepath.Join(root, "missing"), lookPath: noLook}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := findBinDir(tc.s)
			if tc.wantErr {
				if !errors.Is(err, ErrNoServerBinaries) {
					t.Fatalf("findBinDir = %q, %v; want ErrNoServerBinaries", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("findBinDir = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestOwnerState(t *testing.T) {
	// A process that has certainly exited (and been reaped).
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := done.Process.Pid
	self := os.Getpid()
	tests := []struct {
		name                string
		content             *string
		recorded, wantAlive bool
	}{
		{"missing", nil, false, false},
		{"empty", ptr(""), false, false},
		{"garbage", ptr("not-a-pid\n"), true, false},
		{"self", ptr(fmt.Sprintf("%d %s\n", self, procStartTime(self))), true, true},
		{"self without start time", ptr(fmt.Sprintf("%d\n", self)), true, true},
		{"self reused pid", ptr(fmt.Sprintf("%d 1\n", self)), true, false},
		{"dead", ptr(fmt.Sprintf("%d 12345\n", deadPID)), true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.content != nil {
				if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(*tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			rec, alive := ownerState(dir)
			if rec != tc.recorded || alive != tc.wantAlive {
				t.Fatalf("ownerState = (%v, %v), want (%v, %v)", rec, alive, tc.recorded, tc.wantAlive)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestLogTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&b, "line %03d\n", i)
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		n    int64
		want string
	}{
		{9, "line 099"},
		{20, "line 098\nline 099"}, // partial first line dropped
		{1 << 20, strings.TrimRight(b.String(), "\n")},
	}
	for _, tc := range tests {
		if got := logTail(p, tc.n); got != tc.want {
			t.Errorf("logTail(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	if got := logTail(filepath.Join(t.TempDir(), "none"), 10); !strings.HasPrefix(got, "(no log") {
		t.Errorf("logTail(missing) = %q", got)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		prefix string
		ok     bool
	}{
		{"sentry-pgtest-", true},
		{"sentry-demo-", true},
		{"a.b_C9-", true},
		{strings.Repeat("x", maxPrefix), true},
		{"", false},
		{strings.Repeat("x", maxPrefix+1), false},
		{".hidden-", false},
		{"../escape-", false},
		{"a/b-", false},
		{"glob*-", false},
		{"glob?-", false},
		{"class[ab]-", false},
		{"with space-", false},
		{"quote'-", false},
		{"dollar$-", false},
		{"ünicode-", false},
	}
	for _, tc := range tests {
		err := Options{Prefix: tc.prefix}.validate()
		if tc.ok && err != nil {
			t.Errorf("validate(%q) = %v, want nil", tc.prefix, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("validate(%q) = %v, want ErrInvalidOptions", tc.prefix, err)
		}
	}
}

func TestCheckDBName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"bouncer", true},
		{"Mixed Case", true},
		{"ü-ñ/?#%", true},
		{strings.Repeat("n", maxDBName), true},
		{"", false},
		{strings.Repeat("n", maxDBName+1), false},
		{"nul\x00byte", false},
		{"bad\xffutf8", false},
	}
	for _, tc := range tests {
		err := checkDBName(tc.name)
		if tc.ok && err != nil {
			t.Errorf("checkDBName(%q) = %v, want nil", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidDBName) {
			t.Errorf("checkDBName(%q) = %v, want ErrInvalidDBName", tc.name, err)
		}
	}
}

func TestDBURL(t *testing.T) {
	tests := []struct {
		name, want string
	}{
		{"postgres", "postgres://postgres@127.0.0.1:5433/postgres?sslmode=disable"},
		{"t_abc_1", "postgres://postgres@127.0.0.1:5433/t_abc_1?sslmode=disable"},
		{"a b?c#d", "postgres://postgres@127.0.0.1:5433/a%20b%3Fc%23d?sslmode=disable"},
	}
	for _, tc := range tests {
		if got := dbURL(5433, tc.name); got != tc.want {
			t.Errorf("dbURL(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestParseAccount(t *testing.T) {
	tests := []struct {
		name     string
		u        user.User
		want     *runAs
		wantRoot bool // error must wrap ErrNoServerAccount
	}{
		{"ok", user.User{Uid: "101", Gid: "102", Username: "postgres"}, &runAs{uid: 101, gid: 102, name: "postgres"}, false},
		{"uid 0", user.User{Uid: "0", Gid: "0", Username: "postgres"}, nil, true},
		{"bad uid", user.User{Uid: "x", Gid: "1", Username: "postgres"}, nil, false},
		{"bad gid", user.User{Uid: "1", Gid: "-1", Username: "postgres"}, nil, false},
		{"uid too big", user.User{Uid: "4294967296", Gid: "1", Username: "postgres"}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseAccount(&tc.u)
			if tc.want != nil {
				if err != nil || *got != *tc.want {
					t.Fatalf("parseAccount = %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseAccount = %+v, want an error", got)
			}
			if errors.Is(err, ErrNoServerAccount) != tc.wantRoot {
				t.Fatalf("parseAccount error %v: wraps ErrNoServerAccount = %v, want %v",
					err, !tc.wantRoot, tc.wantRoot)
			}
		})
	}
}

func TestInstallHint(t *testing.T) {
	h := InstallHint()
	for _, want := range []string{"postgresql", EnvBinDir, "initdb"} {
		if !strings.Contains(h, want) {
			t.Errorf("InstallHint() = %q lacks %q", h, want)
		}
	}
}
