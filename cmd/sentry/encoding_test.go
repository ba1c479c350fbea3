package main

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/sentry/demo/pgcluster"
)

// TestBinaryRefusesADatabaseNotInUTF8: a bouncer database created in
// SQL_ASCII is refused by `sentry db migrate`, `sentry prime` and
// `sentry run` alike — exit 1, the encoding, the database and what to do
// named — before anything is read or written.
func TestBinaryRefusesADatabaseNotInUTF8(t *testing.T) {
	t.Parallel()
	if !pgtest.Server().Managed() {
		t.Skip("creates a database of its own: needs the managed test cluster")
	}
	ctx := context.Background()
	admin := pgtest.Server().AdminURL()
	const name = "t_binary_sql_ascii"
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, "CREATE DATABASE "+name+" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
	c.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pgcluster.DropDatabase(context.Background(), admin, name) })
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("database:\n  url: "+u.String()+"\nmaster:\n  url: http://127.0.0.1:1/pub\n"+
		"releases:\n  dir: /r/{release}/\n  products: [\"P-{release}\"]\nchecks:\n  contact: ops@example.org\n"+
		"http:\n  listen: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"db", "migrate"}, {"prime", "--release", "1.5"}, {"run"}} {
		stdout, stderr, code := runSentry(t, cfg, nil, args...)
		if code != 1 || !strings.Contains(stderr, "is in encoding SQL_ASCII; sentry needs UTF8") ||
			!strings.Contains(stderr, "database "+name) || !strings.Contains(stderr, "createdb -E UTF8") {
			t.Errorf("sentry %s: exit %d, want 1 naming the encoding:\n%s%s", strings.Join(args, " "), code, stdout, stderr)
		}
	}
	var tables int
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("%d tables were created in the refused database", tables)
	}
}
