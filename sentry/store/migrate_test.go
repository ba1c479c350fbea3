package store_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// setup opens a Store on a fresh, empty database.
func setup(t *testing.T) (*store.Store, string) {
	t.Helper()
	url := pgtest.NewDB(t)
	st, err := store.Open(context.Background(), url, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st, url
}

var bouncerTables = []string{
	"mirror_mirrors", "mirror_products", "mirror_os", "mirror_locations", "mirror_product_langs",
	"mirror_location_mirror_map", "mirror_lmm_lang_exceptions", "mirror_aliases",
	"geoip_mirror_region_map", "sentry_log",
}

var sentryTables = []string{
	"sentry_schema_migrations", "sentry_mirror_settings", "sentry_releases", "sentry_release_files",
	"sentry_runs", "sentry_checks", "sentry_file_state", "sentry_mirror_state", "sentry_state_changes",
	"sentry_block_digests", "sentry_mirror_priming", "sentry_mirror_ranges", "sentry_mirror_verified",
}

// schema describes every column of every table, to compare before and after.
func schema(t *testing.T, st *store.Store) string {
	t.Helper()
	rows, err := st.Pool().Query(context.Background(), `
		SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
		FROM information_schema.columns WHERE table_schema = current_schema()
		ORDER BY table_name, ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		b.WriteString(s + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestMigrateEmptyDatabase(t *testing.T) {
	st, _ := setup(t)
	ctx := context.Background()
	if v, err := st.SchemaVersion(ctx); err != nil || v != 0 {
		t.Fatalf("fresh database: version %d, %v", v, err)
	}
	if err := st.RequireSchema(ctx); !errors.Is(err, store.ErrSchemaOutdated) {
		t.Fatalf("RequireSchema before migrate = %v", err)
	}
	applied, err := st.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	migs, _ := store.Migrations()
	if len(applied) != len(migs) || len(migs) < 2 {
		t.Fatalf("applied %d of %d migrations", len(applied), len(migs))
	}
	s := schema(t, st)
	for _, tbl := range append(bouncerTables, sentryTables...) {
		if !strings.Contains(s, tbl+".") {
			t.Errorf("table %s missing after migrate", tbl)
		}
	}
	if err := st.RequireSchema(ctx); err != nil {
		t.Fatalf("RequireSchema after migrate = %v", err)
	}
	// The redirector's query of docs/CONTRACTS.md, section 2 (How sentry marks
	// them), runs on the schema.
	if _, err := st.Pool().Exec(ctx, `
		SELECT m.id, m.baseurl, m.rating
		FROM mirror_mirrors m
		JOIN mirror_location_mirror_map lmm ON lmm.mirror_id = m.id
		WHERE lmm.location_id = $1 AND m.active AND lmm.active AND lmm.healthy = $2
		ORDER BY m.rating`, 1, true); err != nil {
		t.Fatalf("redirector query: %v", err)
	}
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	st, _ := setup(t)
	ctx := context.Background()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	before := schema(t, st)
	applied, err := st.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Errorf("second migrate applied %d migrations", len(applied))
	}
	if after := schema(t, st); after != before {
		t.Errorf("second migrate changed the schema:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestMigrateKeepsExistingBouncerRowsAndColumns(t *testing.T) {
	st, _ := setup(t)
	ctx := context.Background()
	// An older bouncer database: no healthy column, no unique key on the
	// map, and columns an admin added.
	_, err := st.Pool().Exec(ctx, `
		CREATE TABLE mirror_mirrors (
			id serial PRIMARY KEY, name varchar(64) UNIQUE NOT NULL, baseurl varchar(255) NOT NULL,
			rating int NOT NULL DEFAULT 0, active boolean NOT NULL DEFAULT true, count bigint NOT NULL DEFAULT 0,
			admin_contact text);
		INSERT INTO mirror_mirrors (name, baseurl, rating, active, count, admin_contact) VALUES
			('m1', 'http://m1.example.org/pub', 50, true, 1234, 'root@m1'),
			('m2', 'http://m2.example.org/pub', 10, false, 7, NULL);
		CREATE TABLE mirror_location_mirror_map (
			id bigserial PRIMARY KEY, location_id int NOT NULL, mirror_id int NOT NULL,
			active boolean NOT NULL DEFAULT false, note text);
		INSERT INTO mirror_location_mirror_map (location_id, mirror_id, active, note) VALUES
			(1, 1, true, 'keep me'), (2, 1, false, NULL);`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	var contact, note string
	var count int64
	if err := st.Pool().QueryRow(ctx, `SELECT count(*), max(admin_contact), max(count) FROM mirror_mirrors`).Scan(&n, &contact, &count); err != nil {
		t.Fatal(err)
	}
	if n != 2 || contact != "root@m1" || count != 1234 {
		t.Errorf("mirror_mirrors rows changed: n=%d contact=%q count=%d", n, contact, count)
	}
	var healthy bool
	if err := st.Pool().QueryRow(ctx, `SELECT note, healthy FROM mirror_location_mirror_map WHERE location_id = 1`).Scan(&note, &healthy); err != nil {
		t.Fatal(err)
	}
	if note != "keep me" || !healthy {
		t.Errorf("map row: note=%q healthy=%v", note, healthy)
	}
	// The upsert sentry relies on works on the old table now.
	if _, err := st.Pool().Exec(ctx, `INSERT INTO mirror_location_mirror_map (location_id, mirror_id, active, healthy)
		VALUES (1, 1, false, false) ON CONFLICT (location_id, mirror_id) DO UPDATE SET active = excluded.active`); err != nil {
		t.Fatalf("upsert on migrated old table: %v", err)
	}
	// And a second migrate is still a no-op.
	if applied, err := st.Migrate(ctx); err != nil || len(applied) != 0 {
		t.Fatalf("second migrate: %d applied, %v", len(applied), err)
	}
}

func TestMigrateConcurrent(t *testing.T) {
	_, url := setup(t)
	ctx := context.Background()
	var g errgroup.Group
	total := make([]int, 4)
	for i := range total {
		g.Go(func() error {
			st, err := store.Open(ctx, url, 2)
			if err != nil {
				return err
			}
			defer st.Close()
			applied, err := st.Migrate(ctx)
			total[i] = len(applied)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("concurrent migrate: %v", err)
	}
	migs, _ := store.Migrations()
	sum := 0
	for _, n := range total {
		sum += n
	}
	if sum != len(migs) {
		t.Errorf("concurrent migrates applied %d migrations in all, want %d (each exactly once): %v", sum, len(migs), total)
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	st, _ := setup(t)
	ctx := context.Background()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO sentry_schema_migrations (version, name) VALUES (9999, 'future')`); err != nil {
		t.Fatal(err)
	}
	_, err := st.Migrate(ctx)
	if err == nil || !strings.Contains(err.Error(), "newer than this sentry knows") {
		t.Fatalf("got %v", err)
	}
	// Every other command refuses it too, saying to upgrade.
	err = st.RequireSchema(ctx)
	if !errors.Is(err, store.ErrSchemaNewer) || !strings.Contains(err.Error(), "version 9999") || !strings.Contains(err.Error(), "upgrade sentry") {
		t.Errorf("RequireSchema on a newer schema: %v", err)
	}
}

func TestOpenUnreachableNamesHostNotPassword(t *testing.T) {
	// A port nobody listens on: listen, note the port, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	url := "postgres://sentry:Sup3rS3cret@127.0.0.1:" + strconv.Itoa(port) + "/bouncer?connect_timeout=5"
	_, err = store.Open(context.Background(), url, 2)
	if !errors.Is(err, store.ErrUnreachable) {
		t.Fatalf("want ErrUnreachable, got %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "127.0.0.1:"+strconv.Itoa(port)) {
		t.Errorf("error does not name host and port: %s", msg)
	}
	if strings.Contains(msg, "Sup3rS3cret") {
		t.Errorf("error shows the password: %s", msg)
	}
}

func TestOpenWrongPasswordHidesIt(t *testing.T) {
	// The throwaway cluster trusts every login, so ask for a database that
	// does not exist: the server's refusal must come back without the URL's
	// password.
	base := pgtest.NewDB(t)
	url := strings.Replace(base, "postgres@", "postgres:Sup3rS3cret@", 1)
	i := strings.LastIndex(url, "/")
	j := strings.Index(url[i:], "?")
	bad := url[:i] + "/no_such_db" + url[i+j:]
	_, err := store.Open(context.Background(), bad, 2)
	if !errors.Is(err, store.ErrUnreachable) {
		t.Fatalf("want ErrUnreachable, got %v", err)
	}
	if strings.Contains(err.Error(), "Sup3rS3cret") || !strings.Contains(err.Error(), "no_such_db") {
		t.Errorf("error: %v", err)
	}
}
