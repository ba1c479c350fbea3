// Package pgtest gives tests a real, fresh PostgreSQL database.
//
// A package opts in from its TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// and each test asks for its own empty database:
//
//	url := pgtest.NewDB(t) // postgres://postgres@127.0.0.1:PORT/NAME?sslmode=disable
//
// Main either uses the server named by SENTRY_TEST_DATABASE_URL or starts a
// throwaway cluster (initdb + pg_ctl) in a fresh /tmp/sentry-pgtest-* directory,
// runs the tests, then stops the cluster and removes the directory. Database
// tests never skip: with neither server binaries nor SENTRY_TEST_DATABASE_URL,
// Main prints how to fix it and exits 1.
//
// Environment:
//   - SENTRY_TEST_DATABASE_URL: postgres://user[:password]@host:port/db of an
//     existing server whose role may CREATE DATABASE. The password is never
//     printed.
//   - SENTRY_PG_BINDIR: directory holding initdb, pg_ctl and postgres; when
//     unset, `pg_config --bindir`, the highest /usr/lib/postgresql/*/bin and
//     initdb on PATH are tried in that order.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	envDatabaseURL = "SENTRY_TEST_DATABASE_URL"
	envBinDir      = "SENTRY_PG_BINDIR"

	// dirPrefix names the per-process cluster directories under /tmp.
	dirPrefix = "sentry-pgtest-"
	// ownerFile, inside such a directory, records the owning test process.
	ownerFile = "owner.pid"

	// opTimeout bounds one administrative round trip (connect + statement).
	opTimeout = 60 * time.Second
	// ctlTimeout bounds one initdb / pg_ctl invocation.
	ctlTimeout = 2 * time.Minute
	// maxDBName is PostgreSQL's identifier limit (NAMEDATALEN-1) in bytes.
	maxDBName = 63
	// superuser is the bootstrap role of a managed cluster (initdb -U).
	superuser = "postgres"
	// loopback is where a managed cluster listens.
	loopback = "127.0.0.1"
)

// noServerHelp is printed when neither server binaries nor an external URL
// are available.
const noServerHelp = `pgtest: database tests need PostgreSQL, and none is available (%v).
Fix: install PostgreSQL server packages, e.g. ` + "`apt-get install postgresql`" + `,
or set SENTRY_PG_BINDIR to the directory holding initdb/pg_ctl/postgres,
or set SENTRY_TEST_DATABASE_URL=postgres://user@host:port/db with a role that may CREATE DATABASE.
`

// ErrNotManaged is the reason given when a test asks to stop or start a
// server that pgtest did not start itself (SENTRY_TEST_DATABASE_URL).
var ErrNotManaged = errors.New("pgtest: the database server comes from " + envDatabaseURL +
	" and is not managed by pgtest, so it cannot be stopped or started")

var (
	// server is set by Main before m.Run and never changed afterwards.
	server *Cluster
	// dbSeq numbers the databases NewDB creates in this process.
	dbSeq atomic.Uint64
	// procTag makes database names unique across processes sharing one
	// external server.
	procTag = newProcTag()
)

// Cluster is the PostgreSQL server the tests of this process use: either a
// throwaway cluster started by Main (Managed() == true) or the external
// server named by SENTRY_TEST_DATABASE_URL.
//
// All methods are safe for concurrent use. Stop and Start affect every test
// of the process, so a test that uses them must not run in parallel with
// tests that need the server.
type Cluster struct {
	managed  bool
	adminURL string   // may hold a password (external); never print it
	extURL   *url.URL // parsed external URL, nil when managed
	host     string
	port     int

	// Managed clusters only.
	root    string // the temp directory; everything below lives inside it
	dataDir string
	sockDir string
	logFile string
	bindir  string
	acct    *runAs // nil: run as the current user

	mu       sync.Mutex // serialises Stop/Start/teardown and guards running
	running  bool
	tornDown bool
}

// Main runs the tests of a package against PostgreSQL; call it from
// TestMain. It never returns: it exits the process with m.Run's code (or 1
// when no server could be provided).
//
// With SENTRY_TEST_DATABASE_URL set, that server is checked (it must accept a
// connection and its role must be allowed to CREATE DATABASE) and used as is.
// Otherwise a cluster is created with initdb in a fresh os.MkdirTemp directory
// (/tmp/sentry-pgtest-*) and started with pg_ctl on a free 127.0.0.1 port,
// tuned for speed rather than durability (fsync, synchronous_commit and
// full_page_writes off). As root, initdb/pg_ctl/postgres run as the
// `postgres` system account (initdb refuses root). The server log is in the
// temp directory; on a start failure its tail is printed.
//
// Before starting, clusters left behind by earlier test processes that died
// without cleaning up (for example killed by -timeout) are stopped and their
// directories removed; this is best effort and never fails the run. SIGINT
// and SIGTERM also tear the cluster down before the process dies.
func Main(m *testing.M) {
	os.Exit(mainCode(m))
}

// mainCode is Main without the os.Exit, so deferred calls run.
func mainCode(m *testing.M) int {
	if raw := os.Getenv(envDatabaseURL); raw != "" {
		c, err := externalCluster(raw)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			return 1
		}
		server = c
		return m.Run()
	}

	bindir, err := findBinDir(defaultBinSearch())
	if err != nil {
		fmt.Fprintf(os.Stderr, noServerHelp, err)
		return 1
	}
	acct, err := serverAccount()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v (or set %s)\n", err, envDatabaseURL)
		return 1
	}
	sweepLeftovers(tmpBase(), bindir, acct)

	c, err := startManaged(tmpBase(), bindir, acct)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	server = c
	stopWatch := c.teardownOnSignal()
	code := m.Run()
	stopWatch()
	if err := c.teardown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: warning: %v\n", err)
	}
	return code
}

// Server returns the cluster Main set up, or nil when Main was not called
// (no TestMain, or called from a package that does not use pgtest).
func Server() *Cluster { return server }

// Managed reports whether pgtest started this server itself. It is false
// when SENTRY_TEST_DATABASE_URL is used; Stop and Start then skip the test.
func (c *Cluster) Managed() bool { return c.managed }

// AdminURL returns a superuser (or, for an external server, the configured
// role's) connection URL to the maintenance database. For an external
// server it contains the configured password: do not log it.
func (c *Cluster) AdminURL() string { return c.adminURL }

// Host returns the host the server listens on ("127.0.0.1" when managed).
func (c *Cluster) Host() string { return c.host }

// Port returns the TCP port the server listens on. A managed cluster keeps
// its port across Stop/Start.
func (c *Cluster) Port() int { return c.port }

// Stop shuts the managed server down (pg_ctl stop -m fast: open sessions are
// terminated) and waits until it is gone. It registers a cleanup that starts
// the server again if the test leaves it stopped, so later tests are not
// affected. Stop is a no-op when the server is already stopped. On an
// unmanaged server it calls t.Skip with ErrNotManaged's text.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if !c.managed {
		t.Skip(ErrNotManaged.Error())
	}
	ctx, cancel := context.WithTimeout(t.Context(), ctlTimeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return
	}
	if err := c.pgCtlStop(ctx, "fast"); err != nil {
		t.Fatalf("pgtest: stop server: %v", err)
	}
	c.running = false
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
		defer cancel()
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.running || c.tornDown {
			return
		}
		if err := c.startLocked(ctx); err != nil {
			t.Errorf("pgtest: restart server after test left it stopped: %v", err)
		}
	})
}

// Start starts the managed server again on the same port and data
// directory and returns once it accepts connections. It is a no-op when the
// server is running. On an unmanaged server it calls t.Skip. If the port has
// meanwhile been taken by another process, Start fails the test (with the
// server log's tail).
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if !c.managed {
		t.Skip(ErrNotManaged.Error())
	}
	ctx, cancel := context.WithTimeout(t.Context(), ctlTimeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return
	}
	if err := c.startLocked(ctx); err != nil {
		t.Fatalf("pgtest: start server: %v", err)
	}
}

// NewDB creates a fresh, empty database for the test and returns a URL to
// it. The name is derived from t.Name() (lower-cased, reduced to [a-z0-9_])
// plus a per-process tag and counter, at most 63 bytes. The database is
// created from template0, so concurrent NewDB calls never contend for a
// template, and it is dropped (WITH (FORCE), so leftover sessions do not
// block it) by a t.Cleanup. Safe for parallel tests.
//
// For a managed cluster the URL is
// postgres://postgres@127.0.0.1:PORT/NAME?sslmode=disable; for an external
// server it is SENTRY_TEST_DATABASE_URL with the database replaced (and so
// may hold a password: do not log it).
func NewDB(t testing.TB) string {
	t.Helper()
	c := server
	if c == nil {
		t.Fatal("pgtest: NewDB needs pgtest.Main to be called from the package's TestMain")
	}
	name := dbName(t.Name(), dbSeq.Add(1), procTag)
	ident := pgx.Identifier{name}.Sanitize()

	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	if err := c.adminExec(ctx, "CREATE DATABASE "+ident+" TEMPLATE template0"); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// t.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := c.adminExec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return c.dbURL(name)
}

// TerminateBackends ends every client session connected to dbURL's database
// except the one it opens itself for the purpose, and waits (up to 10 s per
// session, on PostgreSQL 14+) until they are gone, so the victims' next
// statement fails. It connects with dbURL, so that role must be allowed to
// signal the others (superuser, same role, or pg_signal_backend).
func TerminateBackends(t testing.TB, dbURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("pgtest: terminate backends: connect: %v", err)
	}
	defer conn.Close(context.Background())

	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		t.Fatalf("pgtest: terminate backends: server version: %v", err)
	}
	terminate := "pg_terminate_backend(pid)"
	if version >= 140000 {
		terminate = "pg_terminate_backend(pid, 10000)"
	}
	// A session may end on its own between the scan and the signal; the
	// function then returns false with a warning, which is not an error here.
	q := "SELECT count(*) FROM (SELECT " + terminate + " FROM pg_stat_activity" +
		" WHERE datname = current_database() AND pid <> pg_backend_pid()" +
		" AND backend_type = 'client backend') s"
	var n int64
	if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
		t.Fatalf("pgtest: terminate backends: %v", err)
	}
}

// dbURL returns the URL of database name on c.
func (c *Cluster) dbURL(name string) string {
	if c.extURL != nil {
		u := *c.extURL
		u.Path = "/" + name
		u.RawPath = ""
		return u.String()
	}
	return managedURL(c.port, name)
}

// managedURL is the URL of database name on a managed cluster.
func managedURL(port int, name string) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", superuser, loopback, port, name)
}

// adminExec runs one statement on a fresh admin connection.
func (c *Cluster) adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.adminURL)
	if err != nil {
		return fmt.Errorf("connect to admin database: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	return nil
}

// dbName builds a database name from a test name: "t_" + the test name
// lower-cased with every run of other characters replaced by one "_",
// truncated so that the whole, with "_" + tag + "_" + n appended, fits
// PostgreSQL's 63-byte limit.
func dbName(testName string, n uint64, tag string) string {
	suffix := "_" + tag + "_" + strconv.FormatUint(n, 10)
	if len(testName) > 256 { // only a prefix can survive anyway
		testName = testName[:256]
	}
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(testName) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else if !strings.HasSuffix(b.String(), "_") {
			b.WriteByte('_')
		}
	}
	base := b.String() // ASCII only, so byte truncation is safe
	if room := maxDBName - len(suffix); len(base) > room {
		base = base[:max(room, 0)]
	}
	base = strings.TrimRight(base, "_")
	name := base + suffix
	if len(name) > maxDBName {
		name = name[len(name)-maxDBName:]
	}
	return name
}

// newProcTag returns 8 random hex characters.
func newProcTag() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return strconv.FormatInt(int64(os.Getpid()), 16)
	}
	return hex.EncodeToString(b[:])
}

// redactURL returns raw with any password (user info or ?password=) replaced, or a placeholder when
// raw cannot be parsed as a URL (it might then be a key=value string with a
// password somewhere in it).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "<unparseable connection string>"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// externalCluster validates SENTRY_TEST_DATABASE_URL and wraps it.
func externalCluster(raw string) (*Cluster, error) {
	safe := redactURL(raw)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("%s must be a postgres:// URL, got %s", envDatabaseURL, safe)
	}
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		// pgconn redacts passwords in ParseConfigError, but be certain.
		return nil, fmt.Errorf("%s=%s: cannot parse connection URL", envDatabaseURL, safe)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s=%s: connect: %w", envDatabaseURL, safe, err)
	}
	defer conn.Close(context.Background())
	var mayCreate bool
	err = conn.QueryRow(ctx,
		"SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user").Scan(&mayCreate)
	if err != nil {
		return nil, fmt.Errorf("%s=%s: check role: %w", envDatabaseURL, safe, err)
	}
	if !mayCreate {
		return nil, fmt.Errorf("%s=%s: role %q may not CREATE DATABASE (grant CREATEDB)",
			envDatabaseURL, safe, cfg.User)
	}
	return &Cluster{
		managed:  false,
		adminURL: raw,
		extURL:   u,
		host:     cfg.Host,
		port:     int(cfg.Port),
		running:  true,
	}, nil
}

// tmpBase is the directory the cluster directories are created in: /tmp,
// which the postgres account can always traverse (a root user's TMPDIR
// may not be), falling back to os.TempDir.
func tmpBase() string {
	if fi, err := os.Stat("/tmp"); err == nil && fi.IsDir() {
		return "/tmp"
	}
	return os.TempDir()
}

// startManaged creates and starts a throwaway cluster in a new directory
// under base.
func startManaged(base, bindir string, acct *runAs) (_ *Cluster, err error) {
	root, err := os.MkdirTemp(base, dirPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	if strings.ContainsAny(root, "'\"\\ \t\n$`") {
		_ = os.RemoveAll(root)
		return nil, fmt.Errorf("cluster directory %q contains characters pg_ctl cannot pass through its shell", root)
	}
	c := &Cluster{
		managed: true,
		host:    loopback,
		root:    root,
		dataDir: filepath.Join(root, "data"),
		sockDir: filepath.Join(root, "sock"),
		logFile: filepath.Join(root, "postgres.log"),
		bindir:  bindir,
		acct:    acct,
	}
	defer func() {
		if err != nil {
			_ = c.teardown()
		}
	}()
	if err := writeOwner(filepath.Join(root, ownerFile)); err != nil {
		return nil, err
	}
	if err := os.Mkdir(c.sockDir, 0o700); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	for _, p := range []string{root, c.sockDir} {
		if err := acct.chown(p); err != nil {
			return nil, err
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	if _, err := run(ctx, acct, root, filepath.Join(bindir, "initdb"),
		"-D", c.dataDir, "-A", "trust", "-U", superuser, "-E", "UTF8", "--no-locale", "-N"); err != nil {
		return nil, fmt.Errorf("initdb: %w", err)
	}

	// The port is picked by closing a listener, so another process may grab
	// it before the postmaster binds; retry a few times on that one failure.
	c.mu.Lock()
	defer c.mu.Unlock()
	const attempts = 3
	for i := 1; ; i++ {
		if c.port, err = freePort(); err != nil {
			return nil, err
		}
		c.adminURL = managedURL(c.port, "postgres") // the maintenance database
		err = c.startLocked(ctx)
		if err == nil {
			return c, nil
		}
		if i == attempts || !strings.Contains(logTail(c.logFile, 8<<10), "could not bind") {
			return nil, err
		}
	}
}

// serverOptions is the -o argument of pg_ctl start. pg_ctl hands it to a
// shell, hence the quoting (startManaged rejects paths needing more).
func (c *Cluster) serverOptions() string {
	return strings.Join([]string{
		"-p " + strconv.Itoa(c.port),
		"-k '" + c.sockDir + "'",
		"-c listen_addresses=" + loopback,
		"-c fsync=off",
		"-c synchronous_commit=off",
		"-c full_page_writes=off",
		"-c max_connections=300",
		"-c shared_buffers=16MB",
	}, " ")
}

// startLocked runs pg_ctl start -w and checks the server accepts a
// connection. c.mu must be held.
func (c *Cluster) startLocked(ctx context.Context) error {
	_, err := run(ctx, c.acct, c.root, filepath.Join(c.bindir, "pg_ctl"),
		"start", "-w", "-t", "60", "-D", c.dataDir, "-l", c.logFile, "-o", c.serverOptions())
	if err != nil {
		return fmt.Errorf("pg_ctl start (port %d): %w\n--- server log tail (%s) ---\n%s",
			c.port, err, c.logFile, logTail(c.logFile, 4<<10))
	}
	c.running = true
	if err := ping(ctx, c.adminURL); err != nil {
		return fmt.Errorf("server started but refuses connections: %w\n--- server log tail ---\n%s",
			err, logTail(c.logFile, 4<<10))
	}
	return nil
}

// pgCtlStop runs pg_ctl stop -w with the given mode. c.mu must be held.
func (c *Cluster) pgCtlStop(ctx context.Context, mode string) error {
	_, err := run(ctx, c.acct, c.root, filepath.Join(c.bindir, "pg_ctl"),
		"stop", "-w", "-t", "60", "-D", c.dataDir, "-m", mode)
	if err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %w", mode, err)
	}
	return nil
}

// teardown stops the managed cluster (immediate mode; nothing in it is
// worth keeping) and removes its directory. Safe to call more than once and
// concurrently with Stop/Start.
func (c *Cluster) teardown() error {
	if !c.managed {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tornDown {
		return nil
	}
	c.tornDown = true
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	var errs []error
	if c.running {
		if err := c.pgCtlStop(ctx, "immediate"); err != nil {
			errs = append(errs, err)
		}
		c.running = false
	}
	// Whatever pg_ctl said, never leave a postmaster running on a deleted
	// directory.
	signalPostmaster(c.dataDir)
	if err := os.RemoveAll(c.root); err != nil {
		errs = append(errs, fmt.Errorf("remove cluster directory: %w", err))
	}
	return errors.Join(errs...)
}

// teardownOnSignal tears the cluster down when the process gets SIGINT or
// SIGTERM, then lets the signal kill the process as it would have (or
// exits with 128+signal when the signal was ignored at start-up). The
// returned function stops watching and waits for the watcher to exit.
func (c *Cluster) teardownOnSignal() (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case sig := <-ch:
			_ = c.teardown()
			signal.Reset(sig)
			s, _ := sig.(syscall.Signal)
			_ = syscall.Kill(os.Getpid(), s)
			// Still alive: the signal was ignored when the process started
			// (as for background jobs of a shell). The server is gone, so
			// the tests cannot go on either way.
			fmt.Fprintf(os.Stderr, "pgtest: %v: database server stopped, exiting\n", sig)
			os.Exit(128 + int(s))
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
		wg.Wait()
	}
}

// freePort asks the kernel for a free TCP port on the loopback address.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, fmt.Errorf("pick a free port: unexpected address %v", l.Addr())
	}
	return addr.Port, nil
}

// ping opens and closes one connection.
func ping(ctx context.Context, connURL string) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

// logTail returns at most the last n bytes of the file at path, starting at
// a line boundary when possible.
func logTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	// Read one byte more than asked so a cut exactly at a line start is
	// recognised and that line kept.
	off := max(fi.Size()-n-1, 0)
	buf := make([]byte, fi.Size()-off)
	k, _ := f.ReadAt(buf, off)
	s := string(buf[:k])
	if off > 0 {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	return strings.TrimRight(s, "\n")
}
