package world

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// Site is the world of the tests that run sentry as an operator does,
// from a configuration file: the built binary (cmd/sentry) or the command
// line in process (sentry/cli). It is a fresh database, not migrated
// (`sentry db migrate` is the operator's first step), a master serving a
// release, and the path of the configuration file, which the test writes.
// Its bouncer rows come from package factory, each through a connection
// of its own: the processes under test may end the sessions they find.
type Site struct {
	DBURL  string
	Config string
	Rel    *localmirror.Release
	Master *localmirror.Server
	// Mirrors are the ids of the mirrors registered, by name.
	Mirrors map[string]int
}

// NewSite makes a site serving rel; everything it starts is stopped when
// the test ends.
func NewSite(t testing.TB, rel *localmirror.Release) *Site {
	t.Helper()
	return &Site{DBURL: pgtest.NewDB(t), Config: filepath.Join(t.TempDir(), "config.yaml"), Rel: rel,
		Master: Master(t, rel), Mirrors: map[string]int{}}
}

// Connect opens a connection to the site's database: the caller closes it.
func (s *Site) Connect(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), s.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// Exec runs statements on the site's database.
func (s *Site) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	conn := s.Connect(t)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

// Query scans the one row sql returns into dest.
func (s *Site) Query(t testing.TB, sql string, dest ...any) {
	t.Helper()
	conn := s.Connect(t)
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(), sql).Scan(dest...); err != nil {
		t.Fatal(err)
	}
}

// Location is a bouncer location: the name of its operating system and
// its path.
type Location struct{ OS, Path string }

// Product registers a bouncer product with its languages (none: every
// language) and its locations.
func (s *Site) Product(t testing.TB, name string, langs []string, locations ...Location) {
	t.Helper()
	ctx := context.Background()
	conn := s.Connect(t)
	defer conn.Close(ctx)
	p := factory.Product(ctx, t, conn, &factory.ProductOpts{Name: name, Langs: langs})
	oses := map[string]int{}
	for _, l := range locations {
		if oses[l.OS] == 0 {
			oses[l.OS] = factory.OS(ctx, t, conn, &factory.OSOpts{Name: l.OS}).ID
		}
		factory.Location(ctx, t, conn, &factory.LocationOpts{ProductID: p.ID, OSID: oses[l.OS], Path: l.Path})
	}
}

// AddMirror registers a mirror, in Region unless opts says otherwise, and
// returns its id.
func (s *Site) AddMirror(t testing.TB, opts *factory.MirrorOpts) int {
	t.Helper()
	ctx := context.Background()
	conn := s.Connect(t)
	defer conn.Close(ctx)
	o := *opts
	if o.Regions == nil {
		o.Regions = []int{Region}
	}
	m := factory.Mirror(ctx, t, conn, &o)
	s.Mirrors[m.Name] = m.ID
	return m.ID
}

// Settings writes a mirror's sentry_mirror_settings row.
func (s *Site) Settings(t testing.TB, opts *factory.MirrorSettingsOpts) {
	t.Helper()
	ctx := context.Background()
	conn := s.Connect(t)
	defer conn.Close(ctx)
	factory.MirrorSettings(ctx, t, conn, opts)
}
