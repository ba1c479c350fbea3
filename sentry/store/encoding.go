package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// checkEncoding refuses a database whose text is not UTF-8. sentry reads
// and writes Unicode (mirror names as admins type them, paths, what
// mirrors answer); in a database of another encoding — SQL_ASCII above
// all, which stores whatever bytes it is given — a name such as
// "caf\xe9" reaches sentry as bytes that are no UTF-8, which sentry can
// neither write back nor show, and a run would fail on it again and again.
// So such a database is refused before anything is read, with what to do.
func checkEncoding(ctx context.Context, pool *pgxpool.Pool, where string) error {
	var enc string
	if err := pool.QueryRow(ctx, "SELECT current_setting('server_encoding')").Scan(&enc); err != nil {
		return fmt.Errorf("read the database's encoding: %w", err)
	}
	if enc == "UTF8" {
		return nil
	}
	return fmt.Errorf("%w: the database at %s is in encoding %s; sentry needs UTF8 (mirror names, paths and what "+
		"mirrors answer are Unicode): create a database in UTF8 (createdb -E UTF8 -T template0 NAME, or CREATE "+
		"DATABASE NAME ENCODING 'UTF8' TEMPLATE template0), copy the bouncer tables into it (pg_dump, then psql, "+
		"converting non-ASCII names from their real encoding), and point database.url at it", ErrEncoding, where, enc)
}
