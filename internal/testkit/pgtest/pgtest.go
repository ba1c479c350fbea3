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
// throwaway cluster (initdb + pg_ctl, see sentry/demo/pgcluster) in a fresh
// /tmp/sentry-pgtest-* directory, runs the tests, then stops the cluster and
// removes the directory. Database tests never skip: with neither server
// binaries nor SENTRY_TEST_DATABASE_URL, Main prints how to fix it and exits 1.
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
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/sentry/demo/pgcluster"
)

const (
	envDatabaseURL = "SENTRY_TEST_DATABASE_URL"

	// dirPrefix names the per-process cluster directories under /tmp.
	dirPrefix = "sentry-pgtest-"

	// opTimeout bounds one administrative round trip (connect + statement).
	opTimeout = 60 * time.Second
	// maxDBName is PostgreSQL's identifier limit (NAMEDATALEN-1) in bytes.
	maxDBName = 63
)

// noServerHelp is printed when neither server binaries nor an external URL
// are available.
var noServerHelp = `pgtest: database tests need PostgreSQL, and none is available (%v).
Fix: ` + pgcluster.InstallHint() + `
Or set SENTRY_TEST_DATABASE_URL=postgres://user@host:port/db with a role that may CREATE DATABASE.
`

// ErrNoServerBinaries is pgcluster.ErrNoServerBinaries: no directory holding
// initdb, pg_ctl and postgres could be found.
var ErrNoServerBinaries = pgcluster.ErrNoServerBinaries

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
	baseURL  *url.URL // adminURL parsed; NewDB's URLs replace its path
	host     string
	port     int

	pc *pgcluster.Cluster // the throwaway cluster; nil when external
	mu sync.Mutex         // serialises Stop/Start (and their cleanups)
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
	os.Exit(Run(m))
}

// Run is Main without the exit: it returns the code to exit with, so that
// a TestMain can remove what its tests shared once the cluster is gone:
//
//	func TestMain(m *testing.M) {
//		code := pgtest.Run(m)
//		os.RemoveAll(shared)
//		os.Exit(code)
//	}
func Run(m *testing.M) int {
	if raw := os.Getenv(envDatabaseURL); raw != "" {
		c, err := externalCluster(raw)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			return 1
		}
		server = c
		return m.Run()
	}

	pc, err := pgcluster.Start(context.Background(), pgcluster.Options{Prefix: dirPrefix})
	switch {
	case errors.Is(err, pgcluster.ErrNoServerBinaries):
		fmt.Fprintf(os.Stderr, noServerHelp, err)
		return 1
	case errors.Is(err, pgcluster.ErrNoServerAccount):
		fmt.Fprintf(os.Stderr, "pgtest: %v (or set %s)\n", err, envDatabaseURL)
		return 1
	case err != nil:
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	base, err := url.Parse(pc.AdminURL())
	if err != nil { // cannot happen: pgcluster builds it with net/url
		fmt.Fprintf(os.Stderr, "pgtest: parse admin URL: %v\n", err)
		_ = pc.Close()
		return 1
	}
	server = &Cluster{
		managed:  true,
		adminURL: pc.AdminURL(),
		baseURL:  base,
		host:     pc.Host(),
		port:     pc.Port(),
		pc:       pc,
	}
	stopWatch := pc.TeardownOnSignal()
	code := m.Run()
	stopWatch()
	if err := pc.Close(); err != nil {
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.pc.Running() {
		return
	}
	if err := c.pc.Stop(t.Context()); err != nil {
		t.Fatalf("pgtest: stop server: %v", err)
	}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		// A no-op when running; ErrClosed when torn down (by a signal).
		err := c.pc.Start(context.Background())
		if err != nil && !errors.Is(err, pgcluster.ErrClosed) {
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.pc.Start(t.Context()); err != nil {
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
	if err := pgcluster.CreateDatabase(t.Context(), c.adminURL, name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		// t.Context is already cancelled when cleanups run.
		if err := pgcluster.DropDatabase(context.Background(), c.adminURL, name); err != nil {
			t.Errorf("pgtest: %v", err)
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

// dbURL returns the URL of database name on c: the admin URL with the
// database replaced.
func (c *Cluster) dbURL(name string) string {
	u := *c.baseURL
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
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
		baseURL:  u,
		host:     cfg.Host,
		port:     int(cfg.Port),
	}, nil
}
