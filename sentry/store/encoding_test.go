package store_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/sentry/demo/pgcluster"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestOpenRefusesADatabaseNotInUTF8: a bouncer database in SQL_ASCII (or
// LATIN1) is refused at Open — every command and the daemon — with an
// error naming the encoding and what to do, before anything is read; in
// SQL_ASCII a mirror named "caf\xe9" would otherwise reach sentry as bytes
// that are no UTF-8, and stall every run that met it.
func TestOpenRefusesADatabaseNotInUTF8(t *testing.T) {
	t.Parallel()
	if !pgtest.Server().Managed() {
		t.Skip("creates databases of its own: needs the managed test cluster")
	}
	ctx := context.Background()
	admin := pgtest.Server().AdminURL()
	for _, enc := range []string{"SQL_ASCII", "LATIN1"} {
		t.Run(enc, func(t *testing.T) {
			name := fmt.Sprintf("t_encoding_%s_%s", strings.ToLower(enc), pgtestTag(t))
			c, err := pgx.Connect(ctx, admin)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" ENCODING '"+enc+"' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
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
			st, err := store.Open(ctx, u.String(), 2)
			if err == nil {
				st.Close()
				t.Fatalf("a database in %s was opened", enc)
			}
			if !errors.Is(err, store.ErrEncoding) || !strings.Contains(err.Error(), "in encoding "+enc+"; sentry needs UTF8") ||
				!strings.Contains(err.Error(), "database "+name) {
				t.Errorf("error %q does not say the encoding, the database and what sentry needs", err)
			}
			t.Log(err)
		})
	}
}

// pgtestTag is a short tag of the test's name, for a database of its own.
func pgtestTag(t *testing.T) string {
	var h uint32 = 2166136261
	for _, b := range []byte(t.Name()) {
		h = (h ^ uint32(b)) * 16777619
	}
	return fmt.Sprintf("%08x", h)
}
