package pgcluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Tests against real clusters. TestMain starts one shared cluster; tests
// that need their own (Close, the sweep, signals) start it with a prefix
// unique to this process, so concurrent runs of this package cannot sweep
// each other's clusters.

const (
	// helperEnv, when set, turns the test binary into the child process of
	// TestTeardownOnSignal; its value is the prefix to use.
	helperEnv = "PGCLUSTER_TEST_SIGNAL_HELPER"
	// startTimeout bounds starting one cluster in the tests.
	startTimeout = 3 * time.Minute
)

// shared is the cluster TestMain starts.
var shared *Cluster

func TestMain(m *testing.M) {
	if prefix := os.Getenv(helperEnv); prefix != "" {
		os.Exit(signalHelper(prefix))
	}
	os.Exit(mainCode(m))
}

func mainCode(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	c, err := Start(ctx, Options{Prefix: "sentry-pgcluster-test-"})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgcluster tests need PostgreSQL: %v\n", err)
		if errors.Is(err, ErrNoServerBinaries) {
			fmt.Fprintln(os.Stderr, InstallHint())
		}
		return 1
	}
	shared = c
	stop := c.TeardownOnSignal()
	code := m.Run()
	stop()
	if err := c.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "pgcluster tests: close: %v\n", err)
		return 1
	}
	return code
}

// signalHelper is the child of TestTeardownOnSignal: it starts a cluster,
// watches for signals, reports "READY <dir> <admin URL>" and waits for its
// stdin to close (which only happens if the parent gave up on it).
func signalHelper(prefix string) int {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	c, err := Start(ctx, Options{Prefix: prefix})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stop := c.TeardownOnSignal()
	fmt.Printf("READY %s %s\n", c.root, c.AdminURL())
	_, _ = io.Copy(io.Discard, io.LimitReader(os.Stdin, 1<<20))
	stop()
	_ = c.Close()
	return 0
}

// uniquePrefix returns a directory prefix no other process uses.
func uniquePrefix(t *testing.T, what string) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "sentry-pgcluster-" + what + "-" + hex.EncodeToString(b[:]) + "-"
}

// startCluster starts a cluster of its own for the test, closed at its end.
func startCluster(t *testing.T, prefix string, log io.Writer) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	c, err := Start(ctx, Options{Prefix: prefix, Log: log})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// connect opens a connection closed at the end of the test.
func connect(t *testing.T, connURL string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// answers reports whether a server accepts a connection at connURL.
func answers(t *testing.T, connURL string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return false
	}
	conn.Close(context.Background())
	return true
}

// dbExists reports whether c has a database called name.
func dbExists(t *testing.T, c *Cluster, name string) bool {
	t.Helper()
	var n int
	err := connect(t, c.AdminURL()).QueryRow(t.Context(),
		"SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n)
	if err != nil {
		t.Fatalf("query pg_database: %v", err)
	}
	return n == 1
}

// exists reports whether path exists.
func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat %s: %v", path, err)
	}
	return err == nil
}

func TestSharedCluster(t *testing.T) {
	c := shared
	if c.Host() != "127.0.0.1" || c.Port() <= 0 || c.Port() > 65535 {
		t.Fatalf("Host, Port = %q, %d", c.Host(), c.Port())
	}
	want := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port())
	if c.AdminURL() != want {
		t.Fatalf("AdminURL = %q, want %q", c.AdminURL(), want)
	}
	if !c.Running() {
		t.Fatal("Running = false after Start")
	}
	var super bool
	if err := connect(t, c.AdminURL()).QueryRow(t.Context(),
		"SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil || !super {
		t.Fatalf("admin role is superuser = %v, %v", super, err)
	}
	if !strings.HasPrefix(filepath.Base(c.root), "sentry-pgcluster-test-") {
		t.Fatalf("cluster directory %s lacks the prefix", c.root)
	}
}

func TestCreateDB(t *testing.T) {
	c := shared
	tests := []struct {
		name string
	}{
		{"bouncer"},
		{"Mixed Case ü?#%/x"},
		{strings.Repeat("n", maxDBName)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := c.CreateDB(t.Context(), tc.name)
			if err != nil {
				t.Fatalf("CreateDB: %v", err)
			}
			t.Cleanup(func() {
				if err := c.DropDB(context.Background(), tc.name); err != nil {
					t.Errorf("DropDB: %v", err)
				}
			})
			if u != dbURL(c.Port(), tc.name) {
				t.Errorf("CreateDB URL = %q, want %q", u, dbURL(c.Port(), tc.name))
			}
			conn := connect(t, u)
			var cur string
			if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&cur); err != nil {
				t.Fatal(err)
			}
			if cur != tc.name {
				t.Fatalf("URL connects to %q, want %q", cur, tc.name)
			}
			var tables int
			if err := conn.QueryRow(t.Context(),
				"SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil || tables != 0 {
				t.Fatalf("new database has %d public tables (%v), want 0", tables, err)
			}
			if _, err := c.CreateDB(t.Context(), tc.name); err == nil || errors.Is(err, ErrInvalidDBName) {
				t.Fatalf("second CreateDB of %q = %v, want a server error", tc.name, err)
			}
		})
	}
}

func TestCreateDropInvalidName(t *testing.T) {
	for _, name := range []string{"", strings.Repeat("n", maxDBName+1), "a\x00b", "\xff"} {
		if _, err := shared.CreateDB(t.Context(), name); !errors.Is(err, ErrInvalidDBName) {
			t.Errorf("CreateDB(%q) = %v, want ErrInvalidDBName", name, err)
		}
		if err := shared.DropDB(t.Context(), name); !errors.Is(err, ErrInvalidDBName) {
			t.Errorf("DropDB(%q) = %v, want ErrInvalidDBName", name, err)
		}
	}
}

func TestDropDB(t *testing.T) {
	c := shared
	const name = "drop_me"
	u, err := c.CreateDB(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DropDB(context.Background(), name) })
	session := connect(t, u) // must not block the drop
	if _, err := session.Exec(t.Context(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := c.DropDB(t.Context(), name); err != nil {
		t.Fatalf("DropDB with an open session: %v", err)
	}
	if dbExists(t, c, name) {
		t.Fatal("database still exists after DropDB")
	}
	if _, err := session.Exec(t.Context(), "SELECT 1"); err == nil {
		t.Fatal("session on the dropped database still works")
	}
	if err := c.DropDB(t.Context(), name); err != nil {
		t.Fatalf("DropDB of a missing database = %v, want nil", err)
	}
}

func TestStopStart(t *testing.T) {
	c := shared
	u, err := c.CreateDB(t.Context(), "stop_start")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DropDB(context.Background(), "stop_start") })
	before := connect(t, u)
	if _, err := before.Exec(t.Context(), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	port := c.Port()
	t.Cleanup(func() {
		if err := c.Start(context.Background()); err != nil {
			t.Errorf("restart after the test: %v", err)
		}
	})

	for i := range 2 { // the second Stop is a no-op
		if err := c.Stop(t.Context()); err != nil {
			t.Fatalf("Stop #%d: %v", i+1, err)
		}
		if c.Running() {
			t.Fatalf("Running = true after Stop #%d", i+1)
		}
	}
	if _, err := before.Exec(t.Context(), "SELECT 1"); err == nil {
		t.Fatal("query on a connection opened before Stop succeeded")
	}
	if answers(t, u) {
		t.Fatal("connect succeeded while the server is stopped")
	}

	for i := range 2 { // the second Start is a no-op
		if err := c.Start(t.Context()); err != nil {
			t.Fatalf("Start #%d: %v", i+1, err)
		}
		if !c.Running() {
			t.Fatalf("Running = false after Start #%d", i+1)
		}
	}
	if c.Port() != port {
		t.Fatalf("port changed across restart: %d -> %d", port, c.Port())
	}
	var v int
	if err := connect(t, u).QueryRow(t.Context(), "SELECT v FROM kept").Scan(&v); err != nil || v != 7 {
		t.Fatalf("after restart: v = %d, %v; want 7", v, err)
	}
}

func TestStartOnTakenPortFailsWithLogTail(t *testing.T) {
	c := shared
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Start(context.Background()); err != nil {
			t.Errorf("restart after the test: %v", err)
		}
	})
	l, err := net.Listen("tcp", net.JoinHostPort(loopback, strconv.Itoa(c.Port())))
	if err != nil {
		t.Fatalf("occupy port %d: %v", c.Port(), err)
	}
	err = c.Start(t.Context())
	l.Close()
	if err == nil {
		t.Fatal("Start succeeded on a port held by another listener")
	}
	for _, want := range []string{"server log tail", "could not bind"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start error lacks %q:\n%v", want, err)
		}
	}
	if c.Running() {
		t.Error("Running = true after a failed Start")
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatalf("Start once the port is free again: %v", err)
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	var log bytes.Buffer
	c := startCluster(t, uniquePrefix(t, "close"), &log)
	root, admin := c.root, c.AdminURL()
	for _, want := range []string{"using PostgreSQL server binaries", "initdb in " + root,
		fmt.Sprintf("listening on 127.0.0.1:%d", c.Port())} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("progress log lacks %q:\n%s", want, log.String())
		}
	}
	if !answers(t, admin) {
		t.Fatal("new cluster does not answer")
	}

	for i := range 2 { // idempotent
		if err := c.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if exists(t, root) {
		t.Fatalf("cluster directory %s still there after Close", root)
	}
	if answers(t, admin) {
		t.Fatal("server still answers after Close")
	}
	if c.Running() {
		t.Fatal("Running = true after Close")
	}
	ops := []struct {
		name string
		op   func(context.Context) error
	}{
		{"Start", c.Start},
		{"Stop", c.Stop},
		{"CreateDB", func(ctx context.Context) error { _, err := c.CreateDB(ctx, "x"); return err }},
		{"DropDB", func(ctx context.Context) error { return c.DropDB(ctx, "x") }},
	}
	for _, o := range ops {
		if err := o.op(t.Context()); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", o.name, err)
		}
	}
}

func TestStartErrors(t *testing.T) {
	emptyBin := t.TempDir()
	tests := []struct {
		name   string
		prefix string
		bindir string // SENTRY_PG_BINDIR, when set
		want   error
	}{
		{"empty prefix", "", "", ErrInvalidOptions},
		{"path in prefix", "../sentry-", "", ErrInvalidOptions},
		{"glob in prefix", "sentry-*", "", ErrInvalidOptions},
		{"bindir without binaries", uniquePrefix(t, "nobin"), emptyBin, ErrNoServerBinaries},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.bindir != "" {
				t.Setenv(EnvBinDir, tc.bindir)
			}
			c, err := Start(t.Context(), Options{Prefix: tc.prefix})
			if c != nil {
				_ = c.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Start = %v, want %v", err, tc.want)
			}
			if tc.bindir != "" { // a valid prefix: nothing may be left under it
				if m, _ := filepath.Glob(filepath.Join(tmpBase(), tc.prefix+"*")); len(m) != 0 {
					t.Fatalf("failed Start left %v", m)
				}
			}
		})
	}
}

// deadPID returns the PID of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	return done.Process.Pid
}

func TestStartSweepsLeftovers(t *testing.T) {
	prefix := uniquePrefix(t, "sweep")
	base := tmpBase()

	// A real cluster whose owner is gone, as after a -timeout kill.
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	orphan, err := Start(ctx, Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = orphan.Close() }) // the fallback, should the sweep fail
	if err := os.WriteFile(filepath.Join(orphan.root, ownerFile),
		fmt.Appendf(nil, "%d 1\n", deadPID(t)), 0o644); err != nil {
		t.Fatal(err)
	}

	type leftover struct {
		name      string
		path      string
		make      func(path string) error
		wantSwept bool
	}
	mkdir := func(p string) error { return os.Mkdir(p, 0o700) }
	withOwner := func(content string) func(string) error {
		return func(p string) error {
			if err := mkdir(p); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(p, ownerFile), []byte(content), 0o644)
		}
	}
	old := time.Now().Add(-2 * staleAfter)
	cases := []leftover{
		{"live owner", prefix + "live", func(p string) error { return writeOwnerDir(p) }, false},
		{"fresh without owner", prefix + "fresh", mkdir, false},
		{"stale without owner", prefix + "stale", func(p string) error {
			if err := mkdir(p); err != nil {
				return err
			}
			return os.Chtimes(p, old, old)
		}, true},
		{"dead owner, no cluster", prefix + "dead", withOwner(fmt.Sprintf("%d\n", deadPID(t))), true},
		{"not a directory", prefix + "file", func(p string) error { return os.WriteFile(p, nil, 0o644) }, false},
		{"other prefix", uniquePrefix(t, "other") + "dead", withOwner(fmt.Sprintf("%d\n", deadPID(t))), false},
	}
	if os.Geteuid() == 0 {
		cases = append(cases, leftover{"someone else's", prefix + "foreign", func(p string) error {
			if err := withOwner(fmt.Sprintf("%d\n", deadPID(t)))(p); err != nil {
				return err
			}
			return os.Lchown(p, 65534, 65534)
		}, false})
	}
	for i := range cases {
		cases[i].path = filepath.Join(base, cases[i].path)
		p := cases[i].path
		if err := cases[i].make(p); err != nil {
			t.Fatalf("%s: %v", cases[i].name, err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(p) })
	}

	var log bytes.Buffer
	startCluster(t, prefix, &log) // sweeps before it starts

	if exists(t, orphan.root) {
		t.Errorf("orphan cluster directory %s still there", orphan.root)
	}
	if answers(t, orphan.AdminURL()) {
		t.Error("orphan cluster still accepts connections after the sweep")
	}
	if !strings.Contains(log.String(), "removed leftover cluster "+orphan.root) {
		t.Errorf("progress log does not report the orphan:\n%s", log.String())
	}
	for _, tc := range cases {
		if swept := !exists(t, tc.path); swept != tc.wantSwept {
			t.Errorf("%s (%s): swept = %v, want %v", tc.name, tc.path, swept, tc.wantSwept)
		}
	}
}

// writeOwnerDir makes dir and records this process as its owner.
func writeOwnerDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	return writeOwner(filepath.Join(dir, ownerFile))
}

func TestTeardownOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"="+uniquePrefix(t, "signal"))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(io.LimitReader(stdout, 4096)).ReadString('\n')
			fields := strings.Fields(line)
			if err != nil || len(fields) != 3 || fields[0] != "READY" {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("helper did not get ready: %q, %v; stderr:\n%s", line, err, stderr.String())
			}
			root, admin := fields[1], fields[2]
			t.Cleanup(func() { // only does anything if the teardown failed
				if exists(t, root) {
					bindir, _ := findBinDir(defaultBinSearch())
					acct, _ := serverAccount()
					stopLeftover(context.Background(), bindir, acct, root)
					_ = os.RemoveAll(root)
				}
			})

			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, stdout)
			_ = cmd.Wait()
			// Death by the signal, or exit 128+signal when the signal was
			// ignored when the helper started (as in some background jobs).
			ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ok || !(ws.Signaled() && ws.Signal() == sig || ws.Exited() && ws.ExitStatus() == 128+int(sig)) {
				t.Errorf("helper ended with %v, want death by %v; stderr:\n%s", cmd.ProcessState, sig, stderr.String())
			}
			if exists(t, root) {
				t.Errorf("cluster directory %s survived %v", root, sig)
			}
			if answers(t, admin) {
				t.Errorf("cluster still answers after %v", sig)
			}
		})
	}
}
