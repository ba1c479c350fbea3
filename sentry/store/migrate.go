package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLockKey is the advisory lock that serialises concurrent migrations
// (two `sentry db migrate` at once, or a migrate beside a starting daemon).
const migrateLockKey int64 = 0x73656e7472790001 // "sentry" + 1

// Migration is one embedded, versioned schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations lists the embedded migrations in version order. File names are
// NNNN_name.sql; versions must be unique.
func Migrations() ([]Migration, error) {
	entries, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	seen := map[int]string{}
	for _, path := range entries {
		base := strings.TrimSuffix(strings.TrimPrefix(path, "migrations/"), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s is not named NNNN_name.sql", path)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, path, v)
		}
		seen[v] = path
		sql, err := migrationFS.ReadFile(path)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(sql)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Migrate applies every embedded migration the database lacks, in one
// transaction under an advisory lock: concurrent callers wait for each other
// and the second finds nothing to do, and a failing migration leaves the
// database as it was. It returns the migrations it applied (none when the
// schema is current). Existing bouncer tables keep every row and column.
func (s *Store) Migrate(ctx context.Context) ([]Migration, error) {
	migs, err := Migrations()
	if err != nil {
		return nil, err
	}
	var applied []Migration
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS sentry_schema_migrations (
			version int PRIMARY KEY,
			name text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("create sentry_schema_migrations: %w", err)
		}
		done := map[int]bool{}
		rows, err := tx.Query(ctx, `SELECT version FROM sentry_schema_migrations`)
		if err != nil {
			return err
		}
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return fmt.Errorf("read sentry_schema_migrations: %w", err)
		}
		newest := 0
		for _, v := range versions {
			done[v] = true
			newest = max(newest, v)
		}
		if latest := migs[len(migs)-1].Version; newest > latest {
			return fmt.Errorf("the database schema is at version %d, newer than this sentry knows (%d): upgrade sentry", newest, latest)
		}
		for _, m := range migs {
			if done[m.Version] {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO sentry_schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return err
			}
			applied = append(applied, m)
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap("migrate", err)
	}
	return applied, nil
}

// SchemaVersion returns the newest applied migration, 0 for none.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM sentry_schema_migrations`).Scan(&v)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table: never migrated
		return 0, nil
	}
	if err != nil {
		return 0, s.wrap("read schema version", err)
	}
	return v, nil
}

// ErrSchemaOutdated is returned by RequireSchema when the database lacks
// migrations: run `sentry db migrate`.
var ErrSchemaOutdated = errors.New("database schema is not current")

// ErrSchemaNewer is returned by RequireSchema when the database's schema is
// newer than this binary knows: a newer sentry migrated it, and this one
// must be upgraded (it might write what the newer schema no longer means).
var ErrSchemaNewer = errors.New("database schema is newer than this sentry")

// RequireSchema fails unless the schema is exactly the one this binary
// knows: every embedded migration applied (so that commands other than
// `db migrate` never run on a half-made schema), and none it does not know
// (a binary older than the schema refuses, saying to upgrade).
func (s *Store) RequireSchema(ctx context.Context) error {
	migs, err := Migrations()
	if err != nil {
		return err
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	want := migs[len(migs)-1].Version
	switch {
	case v < want:
		return fmt.Errorf("%w: it is at version %d, sentry needs %d; run `sentry db migrate`", ErrSchemaOutdated, v, want)
	case v > want:
		return fmt.Errorf("%w: it is at version %d, this sentry knows up to %d: upgrade sentry (a newer one migrated it)",
			ErrSchemaNewer, v, want)
	}
	return nil
}
