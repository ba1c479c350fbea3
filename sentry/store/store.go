// Package store is sentry's access to the bouncer database: the migrations
// that create the bouncer tables and sentry's own, the reads a run needs
// (mirrors, products, locations, releases, file states) and the writes it
// makes (checks, file state, the bouncer marks, releases and their block
// digests, certificates), each write in a transaction; those of a work row
// are fenced by its lease (fence.go). It also keeps maintenance windows,
// the notices owed to mail (sentry_notices) and retention (Prune). The
// engine's runs and work rows, and the reports, are read and written by
// their own packages over this package's pool.
package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mirrorsentry/sentry/sentry/internal/dburl"
)

// ErrUnreachable is wrapped by Open's error when the database could not be
// reached or refused the login. Its message names host, port, database and
// user, never the password.
var ErrUnreachable = errors.New("database unreachable")

// ErrEncoding is wrapped by Open's error when the database does not store
// text as UTF-8 (encoding.go).
var ErrEncoding = errors.New("database encoding is not UTF8")

// Store is a pool of connections to the bouncer database.
type Store struct {
	pool *pgxpool.Pool
	// secret is the password of the URL, scrubbed from every error that
	// leaves the package (pgx never prints it, but a server message might
	// echo a connection string back).
	secret string
}

// Open connects to the database at url with a pool of at most maxConns
// connections and checks that it answers. The returned error never holds
// the password of url: a URL whose user name or password needs
// percent-encoding is refused unparsed (dburl.ErrNeedsEncoding), since
// read as it stands it would put a piece of the password where the host
// or the database name is expected.
func Open(ctx context.Context, url string, maxConns int) (*Store, error) {
	return OpenAs(ctx, url, maxConns, "sentry")
}

// OpenAs is Open for a pool whose connections PostgreSQL shows as
// application (pg_stat_activity.application_name): the daemon's status
// page has a pool of its own, "sentry web".
func OpenAs(ctx context.Context, url string, maxConns int, application string) (*Store, error) {
	if err := dburl.Check(url); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx redacts passwords in parse errors, but the whole URL may be
		// malformed in ways that defeat redaction: say nothing of it.
		return nil, dburl.ErrInvalid
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = application
	// sentry's transactions are a few statements sent at once: one left
	// open and idle is a process stopped (SIGSTOP) or hung in the middle
	// of one, whose locks would hold the other sentries back. The server
	// ends it.
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "5s"
	s := &Store{secret: cfg.ConnConfig.Password}
	where := describe(cfg.ConnConfig)

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %s", ErrUnreachable, where, s.scrub(rootCause(err)))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%w at %s: %s", ErrUnreachable, where, s.scrub(rootCause(err)))
	}
	if err := checkEncoding(ctx, pool, where); err != nil {
		pool.Close()
		if errors.Is(err, ErrEncoding) {
			return nil, err // names where, never the password
		}
		return nil, fmt.Errorf("%w at %s: %s", ErrUnreachable, where, s.scrub(rootCause(err)))
	}
	s.pool = pool
	return s, nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.wrap("ping database", s.pool.Ping(ctx))
}

// Close closes every connection.
func (s *Store) Close() { s.pool.Close() }

// Pool gives the connection pool to sentry's own packages (advisory locks,
// tests); prefer the Store's methods.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// describe names where a connection goes, without the password:
// "db.example.org:5432 (database bouncer, user sentry)".
func describe(c *pgx.ConnConfig) string {
	host := c.Host
	if strings.HasPrefix(host, "/") {
		host = "socket " + host
	} else {
		host = net.JoinHostPort(host, strconv.Itoa(int(c.Port)))
	}
	return fmt.Sprintf("%s (database %s, user %s)", host, c.Database, c.User)
}

// rootCause reduces a pgx connection error to its last, most specific part
// ("dial tcp 127.0.0.1:1: connect: connection refused", or the server's
// own message), since describe already names the target.
func rootCause(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Severity + ": " + pgErr.Message + " (SQLSTATE " + pgErr.Code + ")"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Error()
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.Error()
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.HasPrefix(msg, "failed to connect to") {
		return msg[i+2:]
	}
	return msg
}

// scrub removes the password from a message where it stands as a password
// would in a connection string that a message might echo back — in a URL
// (":PASSWORD@", also percent-encoded) or a key=value string
// ("password=PASSWORD", also quoted) — and nowhere else: a password such as
// "sentry" must not take the name out of "sentry_runs". pgx and PostgreSQL
// never print the password themselves; this is for a server or proxy that
// echoes a connection string.
func (s *Store) scrub(msg string) string {
	if s.secret == "" {
		return msg
	}
	for _, pw := range []string{s.secret, neturl.PathEscape(s.secret), neturl.QueryEscape(s.secret)} {
		msg = strings.ReplaceAll(msg, ":"+pw+"@", ":xxxxx@")
	}
	quoted := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s.secret)
	kv := regexp.MustCompile(`password=(?:'` + regexp.QuoteMeta(quoted) + `'|` + regexp.QuoteMeta(s.secret) + `(\s|$))`)
	return kv.ReplaceAllString(msg, "password=xxxxx$1")
}

// wrap adds context to a database error. The password never shows in its
// text (a server message might echo a connection string back), and the
// chain stays whole, so that callers can still ask errors.Is and errors.As
// (whether PostgreSQL refused the statement itself, say).
func (s *Store) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return &dbError{msg: what + ": " + s.scrub(err.Error()), err: err}
}

// Wrap is wrap for sentry's packages that run their own statements on
// Pool (package engine).
func (s *Store) Wrap(what string, err error) error { return s.wrap(what, err) }

// dbError is a database error as it leaves the package: a scrubbed text
// over the whole chain.
type dbError struct {
	msg string
	err error
}

func (e *dbError) Error() string { return e.msg }
func (e *dbError) Unwrap() error { return e.err }
