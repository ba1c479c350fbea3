package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

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

// dbNameOf returns the database a URL names.
func dbNameOf(t *testing.T, connURL string) string {
	t.Helper()
	u, err := url.Parse(connURL)
	if err != nil {
		t.Fatalf("parse %q: %v", connURL, err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// useDB checks that the database at connURL is the one named and accepts
// DDL and DML.
func useDB(t *testing.T, connURL string) {
	t.Helper()
	conn := connect(t, connURL)
	ctx := t.Context()
	var cur string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&cur); err != nil {
		t.Fatalf("current_database: %v", err)
	}
	if want := dbNameOf(t, connURL); cur != want {
		t.Fatalf("connected to %q, URL names %q", cur, want)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE probe (id int PRIMARY KEY, v text NOT NULL)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO probe VALUES (1, 'x')"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM probe").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count = %d, %v; want 1", n, err)
	}
}

// dbExists reports whether the server has a database called name.
func dbExists(t *testing.T, name string) bool {
	t.Helper()
	conn := connect(t, Server().AdminURL())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatalf("query pg_database: %v", err)
	}
	return n == 1
}

func TestNewDBDistinctAndUsable(t *testing.T) {
	a, b := NewDB(t), NewDB(t)
	if a == b || dbNameOf(t, a) == dbNameOf(t, b) {
		t.Fatalf("NewDB returned the same database twice: %q", dbNameOf(t, a))
	}
	for _, u := range []string{a, b} {
		useDB(t, u)
	}
	// A new database is empty.
	c := NewDB(t)
	var n int
	if err := connect(t, c).QueryRow(t.Context(),
		"SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("fresh database has %d public tables, want 0", n)
	}
	if Server().Managed() && !strings.HasPrefix(a, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/", Server().Port())) {
		t.Fatalf("managed URL %q does not point at the cluster", a)
	}
}

func TestNewDBParallel(t *testing.T) {
	const n = 8
	var mu sync.Mutex
	names := map[string]bool{}
	t.Run("group", func(t *testing.T) {
		for i := range n {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				u := NewDB(t)
				useDB(t, u)
				mu.Lock()
				names[dbNameOf(t, u)] = true
				mu.Unlock()
			})
		}
	})
	if len(names) != n {
		t.Fatalf("%d parallel NewDB calls gave %d distinct databases", n, len(names))
	}
}

func TestNewDBDroppedAfterCleanup(t *testing.T) {
	var name string
	t.Run("owner", func(t *testing.T) {
		u := NewDB(t)
		name = dbNameOf(t, u)
		// Leave a session open: the drop must not be blocked by it.
		connect(t, u)
		if !dbExists(t, name) {
			t.Fatalf("database %q missing during its test", name)
		}
	})
	if name == "" {
		t.Fatal("subtest did not run")
	}
	if dbExists(t, name) {
		t.Fatalf("database %q still exists after its test's cleanup", name)
	}
}

func TestStopStart(t *testing.T) {
	srv := Server()
	u := NewDB(t)
	useDB(t, u)
	before := connect(t, u)
	port := srv.Port()

	srv.Stop(t)
	if _, err := before.Exec(t.Context(), "SELECT 1"); err == nil {
		t.Fatal("query on a connection opened before Stop succeeded")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, u); err == nil {
		conn.Close(context.Background())
		t.Fatal("connect succeeded while the server is stopped")
	}

	srv.Start(t)
	if srv.Port() != port {
		t.Fatalf("port changed across restart: %d -> %d", port, srv.Port())
	}
	// Same data directory: the table made before the restart is still there.
	var n int
	if err := connect(t, u).QueryRow(t.Context(), "SELECT count(*) FROM probe").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after restart: count = %d, %v; want 1", n, err)
	}
}

func TestStopLeftStoppedIsRestartedByCleanup(t *testing.T) {
	srv := Server()
	t.Run("stops", func(t *testing.T) { srv.Stop(t) })
	useDB(t, NewDB(t))
}

func TestTerminateBackends(t *testing.T) {
	u := NewDB(t)
	victims := []*pgx.Conn{connect(t, u), connect(t, u)}
	for _, v := range victims {
		if _, err := v.Exec(t.Context(), "SELECT 1"); err != nil {
			t.Fatalf("victim before terminate: %v", err)
		}
	}
	other := connect(t, Server().AdminURL()) // another database: must survive

	TerminateBackends(t, u)

	for i, v := range victims {
		if _, err := v.Exec(t.Context(), "SELECT 1"); err == nil {
			t.Fatalf("victim %d still works after TerminateBackends", i)
		}
	}
	if _, err := other.Exec(t.Context(), "SELECT 1"); err != nil {
		t.Fatalf("connection to another database was terminated: %v", err)
	}
	useDB(t, u) // new connections are fine
}

func TestUnmanagedStopStartSkip(t *testing.T) {
	c := &Cluster{managed: false}
	for _, tc := range []struct {
		name string
		op   func(testing.TB)
	}{
		{"Stop", c.Stop},
		{"Start", c.Start},
	} {
		var inner *testing.T
		t.Run(tc.name, func(t *testing.T) {
			inner = t
			tc.op(t)
			t.Error("did not skip")
		})
		if inner == nil || !inner.Skipped() {
			t.Errorf("%s on an unmanaged cluster did not skip", tc.name)
		}
	}
}

func TestDBName(t *testing.T) {
	long := strings.Repeat("VeryLongSubtestName/", 20)
	tests := []struct {
		name, test string
		n          uint64
		want       string
	}{
		{"simple", "TestFoo", 1, "t_testfoo_abcd1234_1"},
		{"subtest", "TestFoo/bar baz", 12, "t_testfoo_bar_baz_abcd1234_12"},
		{"runs collapse", "Test--A//b", 3, "t_test_a_b_abcd1234_3"},
		{"unicode", "TestÄrger/ü", 4, "t_test_rger_abcd1234_4"},
		{"trailing junk", "Test#", 5, "t_test_abcd1234_5"},
		{"empty", "", 6, "t_abcd1234_6"},
		{"long", long, 7, ""},
		{"long big counter", long, 1<<64 - 1, ""},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := dbName(tc.test, tc.n, "abcd1234")
			if tc.want != "" && got != tc.want {
				t.Errorf("dbName(%q, %d) = %q, want %q", tc.test, tc.n, got, tc.want)
			}
			if len(got) > maxDBName {
				t.Errorf("dbName = %q: %d bytes > %d", got, len(got), maxDBName)
			}
			if !strings.HasSuffix(got, fmt.Sprintf("_abcd1234_%d", tc.n)) {
				t.Errorf("dbName = %q lost its unique suffix", got)
			}
			for _, r := range got {
				if !(r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9')) {
					t.Errorf("dbName = %q contains %q", got, r)
				}
			}
			if seen[got] {
				t.Errorf("dbName = %q produced twice", got)
			}
			seen[got] = true
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://u:secret@h:5432/db?sslmode=disable", "postgres://u:xxxxx@h:5432/db?sslmode=disable"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"postgres://u@h/db?password=secret&sslmode=require", "postgres://u@h/db?password=xxxxx&sslmode=require"},
		{"host=h password=secret", "<unparseable connection string>"},
		{"postgres://u:sec ret@h:%zz/db", "<unparseable connection string>"},
	}
	for _, tc := range tests {
		got := redactURL(tc.in)
		if got != tc.want {
			t.Errorf("redactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "secret") || strings.Contains(got, "sec ret") {
			t.Errorf("redactURL(%q) leaks the password: %q", tc.in, got)
		}
	}
}

// TestNoPostgreSQLFailsLoudly runs this test binary again where no server
// binaries can be found: it must exit 1 with a message saying how to fix
// it, never skip the database tests.
func TestNoPostgreSQLFailsLoudly(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{"PATH=/nonexistent", "SENTRY_PG_BINDIR=/nonexistent/pg/bin", "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\n%s", err, out)
	}
	for _, want := range []string{"apt-get install postgresql", "SENTRY_TEST_DATABASE_URL"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("message lacks %q:\n%s", want, out)
		}
	}
}
