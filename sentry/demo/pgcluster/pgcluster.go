// Package pgcluster starts and stops throwaway PostgreSQL clusters: a fresh
// initdb'd data directory under /tmp, a postmaster on a free 127.0.0.1 port,
// trust authentication for the `postgres` superuser, and nothing worth
// keeping (fsync, synchronous_commit and full_page_writes are off).
//
// It is what internal/testkit/pgtest builds its test databases on and what
// `sentry demo` runs against; it does not import "testing".
//
//	c, err := pgcluster.Start(ctx, pgcluster.Options{Prefix: "sentry-demo-"})
//	if errors.Is(err, pgcluster.ErrNoServerBinaries) { ... pgcluster.InstallHint() ... }
//	defer c.Close()
//	url, err := c.CreateDB(ctx, "bouncer")
//
// Server binaries are looked up in SENTRY_PG_BINDIR (which, when set, must
// hold initdb, pg_ctl and postgres), then `pg_config --bindir`, the highest
// /usr/lib/postgresql/*/bin and finally initdb on PATH. As root, initdb,
// pg_ctl and postgres run as the `postgres` system account (initdb refuses
// root). Child processes get an allowlisted environment (PATH, TZ, HOME,
// LC_ALL=C, LANG=C), so PGPASSWORD, PGHOST and the like never reach them.
//
// A process that dies without Close (SIGKILL, go test -timeout) leaves its
// cluster running. Every Start therefore first stops and removes the
// leftovers of dead processes that used the same Prefix; choose a prefix
// no other kind of directory in /tmp starts with.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// EnvBinDir names the environment variable that, when set, must be the
// directory holding initdb, pg_ctl and postgres.
const EnvBinDir = "SENTRY_PG_BINDIR"

const (
	// ownerFile, inside a cluster directory, records the owning process.
	ownerFile = "owner.pid"
	// opTimeout bounds one administrative round trip (connect + statement).
	opTimeout = 60 * time.Second
	// ctlTimeout bounds one initdb / pg_ctl phase.
	ctlTimeout = 2 * time.Minute
	// maxDBName is PostgreSQL's identifier limit (NAMEDATALEN-1) in bytes.
	maxDBName = 63
	// maxPrefix bounds Options.Prefix.
	maxPrefix = 64
	// superuser is the bootstrap role of a cluster (initdb -U).
	superuser = "postgres"
	// loopback is where a cluster listens.
	loopback = "127.0.0.1"
	// portAttempts is how often Start tries a new port when the one it
	// picked was taken before the postmaster could bind it.
	portAttempts = 3
)

var (
	// ErrInvalidOptions is returned (wrapped) by Start when Options are
	// unusable, for example an empty or unsafe Prefix.
	ErrInvalidOptions = errors.New("pgcluster: invalid options")
	// ErrInvalidDBName is returned (wrapped) by CreateDB and DropDB for a
	// name PostgreSQL cannot hold: empty, longer than 63 bytes, not UTF-8
	// or containing a NUL byte.
	ErrInvalidDBName = errors.New("pgcluster: invalid database name")
	// ErrClosed is returned (wrapped) by the methods of a Cluster after
	// Close (or a teardown on a signal) has removed it.
	ErrClosed = errors.New("pgcluster: cluster is closed")
)

// InstallHint is the sentence to show someone who has no usable PostgreSQL
// server binaries (Start failed with ErrNoServerBinaries).
func InstallHint() string {
	return "Install the PostgreSQL server packages (e.g. `apt-get install postgresql`), " +
		"or set " + EnvBinDir + " to the directory holding initdb, pg_ctl and postgres."
}

// Options configures Start.
type Options struct {
	// Prefix starts the name of the cluster's temporary directory, e.g.
	// "sentry-pgtest-" or "sentry-demo-". It is required, at most 64
	// bytes of [A-Za-z0-9._-], and must not start with a dot. It is also
	// what the leftover sweep matches: every directory in /tmp whose name
	// starts with Prefix, that this user (or the server account) owns and
	// whose recorded owner process is gone, or that has no owner record
	// and is more than an hour old, is stopped and deleted. Do not use a
	// prefix that other directories share.
	Prefix string
	// Log, when not nil, receives one line per step (binaries found,
	// leftovers removed, initdb, server started). It is only written
	// during Start.
	Log io.Writer
}

// Cluster is one running (or stopped) throwaway cluster. All methods are
// safe for concurrent use; Stop, Start and Close are serialised.
type Cluster struct {
	port     int
	adminURL string
	root     string // the temp directory; everything below lives inside it
	dataDir  string
	sockDir  string
	logFile  string
	bindir   string
	acct     *runAs // nil: run as the current user

	mu      sync.Mutex // serialises Stop/Start/Close and guards the fields below
	running bool
	closed  bool
}

// Start finds the server binaries, decides the account to run them as,
// sweeps leftovers of dead processes with the same o.Prefix (see Options),
// creates a fresh directory /tmp/<Prefix>* (os.TempDir when /tmp is
// unusable) with initdb, and starts the server on a free 127.0.0.1 port,
// returning once it accepts connections. The port is found by binding port
// 0 and closing the listener, so another process may grab it first; Start
// then retries with a new port, up to three times in all. On failure the
// directory is removed and the error carries the tail of the server log.
//
// The directory holds an owner record (this process's PID and start time),
// the data directory, a private socket directory and postgres.log. Call
// Close to stop the server and remove it all; see TeardownOnSignal for
// SIGINT/SIGTERM. Errors wrap ErrInvalidOptions, ErrNoServerBinaries or
// ErrNoServerAccount where those apply. ctx bounds the whole start-up,
// which is additionally capped at two minutes for initdb and for the start.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	bindir, err := findBinDir(defaultBinSearch())
	if err != nil {
		return nil, err
	}
	logf(o.Log, "using PostgreSQL server binaries in %s", bindir)
	acct, err := serverAccount()
	if err != nil {
		return nil, err
	}
	base := tmpBase()
	sweepLeftovers(ctx, base, o.Prefix, bindir, acct, o.Log)
	return start(ctx, base, o.Prefix, bindir, acct, o.Log)
}

// validate checks the options.
func (o Options) validate() error {
	p := o.Prefix
	if p == "" || len(p) > maxPrefix || p[0] == '.' {
		return fmt.Errorf("%w: prefix %q must be 1 to %d bytes and not start with a dot",
			ErrInvalidOptions, p, maxPrefix)
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%w: prefix %q may only hold letters, digits, '-', '_' and '.'", ErrInvalidOptions, p)
		}
	}
	return nil
}

// logf writes one progress line to w, if any.
func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "pgcluster: "+format+"\n", args...)
	}
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

// start creates and starts a cluster in a new directory base/prefix*.
func start(ctx context.Context, base, prefix, bindir string, acct *runAs, log io.Writer) (_ *Cluster, err error) {
	root, err := os.MkdirTemp(base, prefix+"*")
	if err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	if strings.ContainsAny(root, "'\"\\ \t\n$`") {
		_ = os.RemoveAll(root)
		return nil, fmt.Errorf("cluster directory %q contains characters pg_ctl cannot pass through its shell", root)
	}
	c := &Cluster{
		root:    root,
		dataDir: filepath.Join(root, "data"),
		sockDir: filepath.Join(root, "sock"),
		logFile: filepath.Join(root, "postgres.log"),
		bindir:  bindir,
		acct:    acct,
	}
	defer func() {
		if err != nil {
			_ = c.Close()
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

	ctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	logf(log, "initdb in %s", root)
	if _, err := run(ctx, acct, root, filepath.Join(bindir, "initdb"),
		"-D", c.dataDir, "-A", "trust", "-U", superuser, "-E", "UTF8", "--no-locale", "-N"); err != nil {
		return nil, fmt.Errorf("initdb: %w", err)
	}

	// The port is picked by closing a listener, so another process may grab
	// it before the postmaster binds; retry a few times on that one failure.
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 1; ; i++ {
		if c.port, err = freePort(); err != nil {
			return nil, err
		}
		c.adminURL = dbURL(c.port, "postgres") // the maintenance database
		err = c.startLocked(ctx)
		if err == nil {
			logf(log, "server listening on %s:%d", loopback, c.port)
			return c, nil
		}
		if i == portAttempts || !strings.Contains(logTail(c.logFile, 8<<10), "could not bind") {
			return nil, err
		}
	}
}

// AdminURL returns the superuser connection URL of the maintenance database
// "postgres": postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable.
// It holds no password (the cluster trusts local TCP connections).
func (c *Cluster) AdminURL() string { return c.adminURL }

// Host returns the address the server listens on, always "127.0.0.1".
func (c *Cluster) Host() string { return loopback }

// Port returns the TCP port the server listens on; it stays the same across
// Stop and Start.
func (c *Cluster) Port() int { return c.port }

// Running reports whether the server is started, as far as this Cluster
// knows: true after Start, false after Stop or Close.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// Stop shuts the server down with pg_ctl stop -m fast (open sessions are
// terminated, the data is kept) and waits until it is gone. It is a no-op
// when the server is already stopped and fails with ErrClosed after Close.
// When pg_ctl fails the cluster is still considered running. ctx bounds the
// wait, which is additionally capped at two minutes.
func (c *Cluster) Stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if !c.running {
		return nil
	}
	if err := c.pgCtlStop(ctx, "fast"); err != nil {
		return err
	}
	c.running = false
	return nil
}

// Start starts a stopped server again on the same port and data directory
// and returns once it accepts connections. It is a no-op when the server is
// running and fails with ErrClosed after Close. If the port has meanwhile
// been taken by another process, Start fails (with the server log's tail in
// the error); it does not move to another port. ctx bounds the wait, which
// is additionally capped at two minutes.
func (c *Cluster) Start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ctlTimeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.running {
		return nil
	}
	return c.startLocked(ctx)
}

// serverOptions is the -o argument of pg_ctl start. pg_ctl hands it to a
// shell, hence the quoting (start rejects paths needing more).
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

// Close stops the server (pg_ctl stop -m immediate: nothing in it is worth
// keeping) and removes the cluster directory. Whatever pg_ctl says, the
// postmaster recorded in the data directory is then sent SIGQUIT, so no
// server keeps running on a deleted directory. Close is idempotent (later
// calls return nil) and safe to call concurrently with Stop and Start; it
// waits at most about two minutes for pg_ctl.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	var errs []error
	if c.running {
		if err := c.pgCtlStop(ctx, "immediate"); err != nil {
			errs = append(errs, err)
		}
		c.running = false
	}
	signalPostmaster(c.dataDir)
	if err := os.RemoveAll(c.root); err != nil {
		errs = append(errs, fmt.Errorf("remove cluster directory: %w", err))
	}
	return errors.Join(errs...)
}

// TeardownOnSignal closes the cluster when the process gets SIGINT or
// SIGTERM, then lets the signal kill the process as it would have (or,
// when the signal was ignored at start-up, as for background jobs of a
// shell, prints a line to stderr and exits with 128+signal). Nothing else of
// the process gets to clean up in that case, so other resources should not
// rely on deferred calls. The returned function stops watching and waits
// for the watcher goroutine to exit; call it before Close on the normal
// path.
func (c *Cluster) TeardownOnSignal() (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case sig := <-ch:
			_ = c.Close()
			signal.Reset(sig)
			s, _ := sig.(syscall.Signal)
			_ = syscall.Kill(os.Getpid(), s)
			// Still alive: the signal was ignored when the process started.
			// The server is gone, so the process cannot go on either way.
			fmt.Fprintf(os.Stderr, "pgcluster: %v: database server stopped, exiting\n", sig)
			os.Exit(128 + int(s))
		case <-done:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			wg.Wait()
		})
	}
}

// CreateDB creates an empty database called name (any valid PostgreSQL
// name; it is quoted as an identifier) from template0, so concurrent calls
// never contend for a template, and returns the superuser URL of it:
// postgres://postgres@127.0.0.1:PORT/NAME?sslmode=disable, with NAME
// escaped as a URL path. It fails if the database exists, with
// ErrInvalidDBName for an unusable name and with ErrClosed after Close.
// Each call opens and closes one admin connection, bounded by ctx and
// capped at a minute.
func (c *Cluster) CreateDB(ctx context.Context, name string) (string, error) {
	if c.isClosed() {
		return "", ErrClosed
	}
	if err := CreateDatabase(ctx, c.adminURL, name); err != nil {
		return "", err
	}
	return dbURL(c.port, name), nil
}

// DropDB drops the database called name if it exists, WITH (FORCE), so
// sessions still connected to it are terminated rather than blocking the
// drop. Dropping a database that does not exist is not an error. It fails
// with ErrInvalidDBName for an unusable name and with ErrClosed after Close.
func (c *Cluster) DropDB(ctx context.Context, name string) error {
	if c.isClosed() {
		return ErrClosed
	}
	return DropDatabase(ctx, c.adminURL, name)
}

// isClosed reports whether Close has run.
func (c *Cluster) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// CreateDatabase runs CREATE DATABASE name TEMPLATE template0 on the server
// adminURL points at, whose role must be allowed to create databases. It is
// CreateDB for servers this package did not start (pgtest uses it for
// SENTRY_TEST_DATABASE_URL). adminURL may hold a password; it is never put
// into the error by this function.
func CreateDatabase(ctx context.Context, adminURL, name string) error {
	if err := checkDBName(name); err != nil {
		return err
	}
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE template0"
	if err := adminExec(ctx, adminURL, sql); err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// DropDatabase runs DROP DATABASE IF EXISTS name WITH (FORCE) (PostgreSQL
// 13 or later) on the server adminURL points at. It is DropDB for servers
// this package did not start.
func DropDatabase(ctx context.Context, adminURL, name string) error {
	if err := checkDBName(name); err != nil {
		return err
	}
	sql := "DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"
	if err := adminExec(ctx, adminURL, sql); err != nil {
		return fmt.Errorf("drop database %q: %w", name, err)
	}
	return nil
}

// checkDBName rejects names PostgreSQL cannot hold.
func checkDBName(name string) error {
	if name == "" || len(name) > maxDBName || strings.ContainsRune(name, 0) || !utf8.ValidString(name) {
		return fmt.Errorf("%w: %q must be 1 to %d bytes of UTF-8 without NUL",
			ErrInvalidDBName, truncate(name, 80), maxDBName)
	}
	return nil
}

// truncate shortens s to at most n bytes for messages.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// adminExec runs one statement on a fresh connection to adminURL.
func adminExec(ctx context.Context, adminURL, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to admin database: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	return nil
}

// dbURL is the superuser URL of database name on a cluster at port.
func dbURL(port int, name string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(superuser),
		Host:     net.JoinHostPort(loopback, strconv.Itoa(port)),
		Path:     "/" + name,
		RawQuery: "sslmode=disable",
	}
	return u.String()
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
