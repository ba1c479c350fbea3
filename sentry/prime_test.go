package sentry_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/prime"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	locWin   = "/firefox/releases/1.5/win32/:lang/Firefox Setup 1.5.exe"
	locLinux = "/firefox/releases/1.5/linux-x86_64/:lang/firefox-1.5.tar.bz2"
)

// bundle is what a prime test works with besides the Deps.
type bundle struct {
	rel    *localmirror.Release
	master *localmirror.Server
	st     *store.Store
	locWin int
	locLin int
	logs   *bytes.Buffer
	// seen is every check the world's runs made, routine ones included
	// (those are only counted in the database).
	seen *seenChecks
}

// seenChecks records every check observers are told of.
type seenChecks struct {
	mu     sync.Mutex
	checks []observe.CheckEvent
}

func (s *seenChecks) CheckDone(c observe.CheckEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, c)
}
func (*seenChecks) StateChanged(observe.StateChangeEvent) {}
func (*seenChecks) GuardHeld(observe.GuardEvent)          {}
func (*seenChecks) RunFinished(observe.RunEvent)          {}

// all returns the checks seen so far, in the order they were made.
func (s *seenChecks) all() []observe.CheckEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.checks)
	slices.SortStableFunc(out, func(a, b observe.CheckEvent) int { return a.At.Compare(b.At) })
	return out
}

// setup makes a migrated database holding a Firefox-1.5 product in en-US
// and de with two :lang locations, a master serving the release, and Deps
// configured for fast local tests.
func setup(t *testing.T) (*sentry.Deps, *bundle) {
	t.Helper()
	ctx := context.Background()
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{}}
	for _, lang := range []string{"en-US", "de"} {
		p := "win32/" + lang + "/Firefox Setup 1.5.exe"
		rel.Files[p] = localmirror.Content(p, 70_000)
		p = "linux-x86_64/" + lang + "/firefox-1.5.tar.bz2"
		rel.Files[p] = localmirror.Content(p, 90_000)
	}
	master, err := localmirror.NewMaster(rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })

	dbURL := pgtest.NewDB(t)
	st, err := store.Open(ctx, dbURL, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	b := &bundle{rel: rel, master: master, st: st, logs: &bytes.Buffer{}, seen: &seenChecks{}}
	err = st.Pool().QueryRow(ctx, `
		WITH p AS (INSERT INTO mirror_products (name) VALUES ('Firefox-1.5') RETURNING id),
		     langs AS (INSERT INTO mirror_product_langs (product_id, language) SELECT id, l FROM p, unnest(ARRAY['en-US','de']) l),
		     os AS (INSERT INTO mirror_os (name) VALUES ('win'), ('linux') RETURNING id, name),
		     lw AS (INSERT INTO mirror_locations (product_id, os_id, path)
		            SELECT p.id, os.id, $1 FROM p, os WHERE os.name = 'win' RETURNING id),
		     ll AS (INSERT INTO mirror_locations (product_id, os_id, path)
		            SELECT p.id, os.id, $2 FROM p, os WHERE os.name = 'linux' RETURNING id)
		SELECT (SELECT id FROM lw), (SELECT id FROM ll)`, locWin, locLinux).Scan(&b.locWin, &b.locLin)
	if err != nil {
		t.Fatal(err)
	}

	cfg := config.Default()
	cfg.Database.URL = dbURL
	cfg.Master.URL = master.URL
	cfg.Releases.Dir = "/firefox/releases/{release}/"
	cfg.Releases.Products = []string{"Firefox-{release}", "Firefox-{release}-SSL"}
	cfg.Checks.Contact = "https://example.org/sentry-tests"
	cfg.Checks.Retries = 1
	// Local mirrors answer at once: the tests that are not about the
	// request rate should not wait for it.
	cfg.Checks.PerMirrorRate = 100_000
	cfg.Checks.RetryWaitMin = config.Duration(5 * time.Millisecond)
	cfg.Checks.RetryWaitMax = config.Duration(20 * time.Millisecond)
	cfg.Checks.BodyIdleTimeout = config.Duration(300 * time.Millisecond)
	cfg.Checks.HeaderTimeout = config.Duration(5 * time.Second)
	cfg.Prime.Deadline = config.Duration(3 * time.Second)
	cfg.Prime.PollInterval = config.Duration(5 * time.Millisecond)
	cfg.Prime.PollMax = config.Duration(20 * time.Millisecond)
	cfg.Trigger.Secret = "trigger-secret-for-tests"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	client, err := sentry.NewClient(&cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return &sentry.Deps{Config: &cfg, Store: st, Client: client, Logger: log, Observer: b.seen}, b
}

// addMirror inserts an active mirror (and its settings when mode is not
// empty) and returns its id.
func (b *bundle) addMirror(t *testing.T, name, baseURL, mode, triggerURL string, maxConc int) int {
	t.Helper()
	ctx := context.Background()
	var id int
	if err := b.st.Pool().QueryRow(ctx, `INSERT INTO mirror_mirrors (name, baseurl, rating) VALUES ($1, $2, 10) RETURNING id`,
		name, baseURL).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if mode != "" || maxConc > 0 {
		if mode == "" {
			mode = "pull"
		}
		var conc any
		if maxConc > 0 {
			conc = maxConc
		}
		if _, err := b.st.Pool().Exec(ctx, `INSERT INTO sentry_mirror_settings (mirror_id, prime_mode, trigger_url, max_concurrency)
			VALUES ($1, $2, nullif($3, ''), $4)`, id, mode, triggerURL, conc); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// static starts a mirror holding the whole release and registers it.
func (b *bundle) static(t *testing.T, name string) (*localmirror.Server, int) {
	t.Helper()
	s, err := localmirror.NewStatic(name, b.rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, b.addMirror(t, name, s.URL, "", "", 0)
}

type lmmRow struct {
	Active, Healthy bool
}

// marks returns mirror_location_mirror_map as location → mirror → row.
func (b *bundle) marks(t *testing.T) map[int]map[int]lmmRow {
	t.Helper()
	rows, err := b.st.Pool().Query(context.Background(), `SELECT location_id, mirror_id, active, healthy FROM mirror_location_mirror_map`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int]map[int]lmmRow{}
	for rows.Next() {
		var loc, m int
		var r lmmRow
		if err := rows.Scan(&loc, &m, &r.Active, &r.Healthy); err != nil {
			t.Fatal(err)
		}
		if out[loc] == nil {
			out[loc] = map[int]lmmRow{}
		}
		out[loc][m] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// redirector runs the redirector's query of DESIGN.md section 2.
func (b *bundle) redirector(t *testing.T, location int, healthy bool) []int {
	t.Helper()
	rows, err := b.st.Pool().Query(context.Background(), `
		SELECT m.id, m.baseurl, m.rating
		FROM mirror_mirrors m
		JOIN mirror_location_mirror_map lmm ON lmm.mirror_id = m.id
		WHERE lmm.location_id = $1 AND m.active AND lmm.active AND lmm.healthy = $2
		ORDER BY m.rating`, location, healthy)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []int
	for rows.Next() {
		var id, rating int
		var base string
		if err := rows.Scan(&id, &base, &rating); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

func primeRelease(t *testing.T, d *sentry.Deps) *prime.Report {
	t.Helper()
	rep, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5"})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func mirrorSums(t *testing.T, rep *prime.Report, name string) prime.MirrorSums {
	t.Helper()
	for _, m := range rep.Mirrors {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("mirror %s not in report", name)
	return prime.MirrorSums{}
}

func sorted(ids ...int) []int { sort.Ints(ids); return ids }

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameMarks(a, b map[int]map[int]lmmRow) bool {
	if len(a) != len(b) {
		return false
	}
	for loc, am := range a {
		bm := b[loc]
		if len(am) != len(bm) {
			return false
		}
		for m, r := range am {
			if bm[m] != r {
				return false
			}
		}
	}
	return true
}
