package promote_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/promote"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// aliasWorld is a bouncer database with releases 1.5, 2.0 and 3.0 primed
// in that order (their products Firefox-R, with a win and a linux
// location each, and Firefox-R-SSL with one), firefox-latest naming
// Firefox-1.5, and mirrors a (79), b (20), c (1) in a region, http://,
// and s (10) https:// for the SSL products.
type aliasWorld struct {
	st        *store.Store
	p         *promote.Promoter
	events    *aliasEvents
	mirrors   map[string]int
	locations map[string]int // "Firefox-2.0/win"
}

type aliasEvents struct {
	observe.Observer
	mu   sync.Mutex
	list []observe.AliasEvent
}

func (e *aliasEvents) AliasPromoted(ev observe.AliasEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, ev)
}

func (e *aliasEvents) all() []observe.AliasEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]observe.AliasEvent(nil), e.list...)
}

func newAliasWorld(t *testing.T) *aliasWorld {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, pgtest.NewDB(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	db := st.Pool()
	w := &aliasWorld{st: st, mirrors: map[string]int{}, locations: map[string]int{}, events: &aliasEvents{Observer: observe.Nop}}
	win := factory.OS(ctx, t, db, &factory.OSOpts{Name: "win"}).ID
	linux := factory.OS(ctx, t, db, &factory.OSOpts{Name: "linux"}).ID
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i, rel := range []string{"1.5", "2.0", "3.0"} {
		for _, name := range []string{"Firefox-" + rel, "Firefox-" + rel + "-SSL"} {
			p := factory.Product(ctx, t, db, &factory.ProductOpts{Name: name, SSLOnly: factory.Ptr(strings.HasSuffix(name, "SSL"))}).ID
			w.locations[name+"/win"] = factory.Location(ctx, t, db, &factory.LocationOpts{ProductID: p, OSID: win, Path: "/" + rel + "/win/:lang/setup.exe"}).ID
			if !strings.HasSuffix(name, "SSL") {
				w.locations[name+"/linux"] = factory.Location(ctx, t, db, &factory.LocationOpts{ProductID: p, OSID: linux, Path: "/" + rel + "/linux/:lang/f.tar.bz2"}).ID
			}
		}
		// sentry's record of the release and its first prime.
		var id int64
		if err := db.QueryRow(ctx, `INSERT INTO sentry_releases (name, manifest_url, manifest_sha256, file_count, total_bytes, master_state)
			VALUES ($1, 'u', 'x', 3, 3, 'ok') RETURNING id`, rel).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, `INSERT INTO sentry_runs (kind, release_id, vantage, host, pid, started_at, finished_at, outcome)
			VALUES ('prime', $1, 'default', 'h', 1, $2, $2, 'completed')`, id, start.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for name, rating := range map[string]int{"a": 79, "b": 20, "c": 1} {
		w.mirrors[name] = factory.Mirror(ctx, t, db, &factory.MirrorOpts{Name: name, Rating: factory.Ptr(rating), Regions: []int{1}}).ID
	}
	w.mirrors["s"] = factory.Mirror(ctx, t, db, &factory.MirrorOpts{Name: "s", BaseURL: "https://s.example.org/pub", Rating: factory.Ptr(10), Regions: []int{1}}).ID
	factory.Alias(ctx, t, db, &factory.AliasOpts{Alias: "firefox-latest", RelatedProduct: "Firefox-1.5"})
	cfg := config.Default()
	cfg.Releases.Products = []string{"Firefox-{release}", "Firefox-{release}-SSL"}
	cfg.Releases.Aliases = map[string]string{"firefox-latest": "Firefox-{release}", "firefox-latest-ssl": "Firefox-{release}-SSL"}
	w.p = &promote.Promoter{Config: &cfg, Store: st, Observer: w.events}
	return w
}

// hold marks the location of product/os good on the named mirrors.
func (w *aliasWorld) hold(t *testing.T, loc string, mirrors ...string) {
	t.Helper()
	for _, m := range mirrors {
		factory.LocationMirror(context.Background(), t, w.st.Pool(), &factory.LocationMirrorOpts{LocationID: w.locations[loc],
			MirrorID: w.mirrors[m], Active: factory.Ptr(true), Healthy: factory.Ptr(true)})
	}
}

func (w *aliasWorld) alias(t *testing.T, alias string) string {
	t.Helper()
	p, _, err := store.AliasProduct(context.Background(), w.st.Pool(), alias)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (w *aliasWorld) moves(t *testing.T) int {
	t.Helper()
	var n int
	if err := w.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM sentry_alias_moves`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// oneOf is a function that takes what Promoter.Release returns and
// gives its one outcome, failing t otherwise.
func oneOf(t *testing.T) func([]promote.Outcome, error) promote.Outcome {
	return func(outs []promote.Outcome, err error) promote.Outcome {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if len(outs) != 1 {
			t.Fatalf("%d outcomes: %+v", len(outs), outs)
		}
		return outs[0]
	}
}

// TestPromoteAtTheThresholdOnce: an alias is not moved while a location
// of the release's product is at 79% of its eligible capacity, a dry run
// at 80% moves nothing, and at 80% it is moved — once, however many ask at
// the same moment — recorded and told.
func TestPromoteAtTheThresholdOnce(t *testing.T) {
	t.Parallel()
	w := newAliasWorld(t)
	ctx := context.Background()
	one := oneOf(t)
	w.hold(t, "Firefox-2.0/linux", "a", "b", "c")
	w.hold(t, "Firefox-2.0/win", "a") // 79 of 100
	// b holds it too, but unhealthy: not counted.
	factory.LocationMirror(ctx, t, w.st.Pool(), &factory.LocationMirrorOpts{LocationID: w.locations["Firefox-2.0/win"],
		MirrorID: w.mirrors["b"], Active: factory.Ptr(true), Healthy: factory.Ptr(false)})
	req := promote.Request{Release: "2.0", Alias: "firefox-latest", By: "command"}

	o := one(w.p.Release(ctx, req))
	if o.Moved || o.Live() || !strings.Contains(o.Why, "1 of 2 locations below 80.0%") || *o.MinUptake != 0.79 {
		t.Errorf("at 79%%: %+v", o)
	}
	if got := w.alias(t, "firefox-latest"); got != "Firefox-1.5" || w.moves(t) != 0 {
		t.Errorf("at 79%%: alias names %s, %d moves recorded", got, w.moves(t))
	}

	w.hold(t, "Firefox-2.0/win", "c") // 80%
	dry := req
	dry.DryRun = true
	if o := one(w.p.Release(ctx, dry)); !o.WouldMove || o.Moved {
		t.Errorf("dry run at 80%%: %+v", o)
	}
	if got := w.alias(t, "firefox-latest"); got != "Firefox-1.5" || w.moves(t) != 0 || len(w.events.all()) != 0 {
		t.Errorf("a dry run changed something: alias %s, %d moves, %d events", got, w.moves(t), len(w.events.all()))
	}

	// Several ask at once (mirrors finishing together): one move.
	var wg sync.WaitGroup
	outs := make([]promote.Outcome, 4)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := req
			r.By, r.RunID = "prime", 7
			o, err := w.p.Release(ctx, r)
			if err != nil {
				t.Error(err)
				return
			}
			outs[i] = o[0]
		}()
	}
	wg.Wait()
	moved := 0
	for _, o := range outs {
		if o.Moved {
			moved++
		} else if !o.Already {
			t.Errorf("neither moved nor already: %+v", o)
		}
	}
	if moved != 1 || w.moves(t) != 1 {
		t.Errorf("%d judgements moved the alias, %d moves recorded; want 1 and 1", moved, w.moves(t))
	}
	if got := w.alias(t, "firefox-latest"); got != "Firefox-2.0" {
		t.Errorf("alias names %s, want Firefox-2.0", got)
	}
	ev := w.events.all()
	if len(ev) != 1 || ev[0].Alias != "firefox-latest" || ev[0].From != "Firefox-1.5" || ev[0].To != "Firefox-2.0" ||
		ev[0].Release != "2.0" || ev[0].By != "prime" || ev[0].RunID != 7 || *ev[0].MinUptake != 0.8 {
		t.Errorf("events %+v", ev)
	}
	moves, err := store.LastAliasMoves(ctx, w.st.Pool())
	if err != nil || len(moves) != 1 || moves[0].From != "Firefox-1.5" || moves[0].To != "Firefox-2.0" || moves[0].By != "prime" || moves[0].Forced {
		t.Errorf("recorded moves %+v %v", moves, err)
	}
}

// TestPromoteNeverBackwards: an alias naming a release's product is not
// moved to a release first primed before it, ready as it may be — unless
// forced (a rollback); a target sentry does not know holds nothing back.
func TestPromoteNeverBackwards(t *testing.T) {
	t.Parallel()
	w := newAliasWorld(t)
	ctx := context.Background()
	one := oneOf(t)
	for _, loc := range []string{"Firefox-1.5/win", "Firefox-1.5/linux", "Firefox-3.0/win", "Firefox-3.0/linux"} {
		w.hold(t, loc, "a", "b", "c")
	}
	if o := one(w.p.Release(ctx, promote.Request{Release: "3.0", Alias: "firefox-latest"})); !o.Moved {
		t.Fatalf("3.0: %+v", o)
	}
	o := one(w.p.Release(ctx, promote.Request{Release: "1.5", Alias: "firefox-latest"}))
	if o.Moved || !strings.Contains(o.Why, "never backwards") || w.alias(t, "firefox-latest") != "Firefox-3.0" {
		t.Errorf("back to 1.5: %+v; alias names %s", o, w.alias(t, "firefox-latest"))
	}
	// The sweep's judgement looks at the newest releases first and stops
	// at the one the alias names: nothing moves.
	if moved, err := w.p.Due(ctx, "sweep", 9); err != nil || len(moved) != 0 {
		t.Errorf("Due moved %+v (%v)", moved, err)
	}
	if o := one(w.p.Release(ctx, promote.Request{Release: "1.5", Alias: "firefox-latest", Force: true})); !o.Moved || !o.Forced {
		t.Errorf("a forced rollback: %+v", o)
	}
	if w.alias(t, "firefox-latest") != "Firefox-1.5" || w.moves(t) != 2 {
		t.Errorf("after the rollback: alias %s, %d moves", w.alias(t, "firefox-latest"), w.moves(t))
	}
	// An alias naming what sentry does not know (no release of it) is
	// moved to a ready release whatever its age.
	if _, err := w.st.Pool().Exec(ctx, `UPDATE mirror_aliases SET related_product = 'Firefox-9.9-beta' WHERE alias = 'firefox-latest'`); err != nil {
		t.Fatal(err)
	}
	if o := one(w.p.Release(ctx, promote.Request{Release: "1.5", Alias: "firefox-latest"})); !o.Moved {
		t.Errorf("from an unknown target: %+v", o)
	}
}

// TestPromoteDue: a sweep's judgement moves each alias to the newest
// release whose product is ready (here 2.0: 3.0 is not yet), creating the
// alias's row when it has none, and each of the release's products on its
// own (the SSL product's uptake counts the https:// mirror only).
func TestPromoteDue(t *testing.T) {
	t.Parallel()
	w := newAliasWorld(t)
	ctx := context.Background()
	for _, loc := range []string{"Firefox-2.0/win", "Firefox-2.0/linux", "Firefox-3.0/linux"} {
		w.hold(t, loc, "a", "b", "c")
	}
	w.hold(t, "Firefox-3.0/win", "b")
	w.hold(t, "Firefox-2.0-SSL/win", "s")
	w.hold(t, "Firefox-3.0-SSL/win", "a", "b", "c") // http:// mirrors: never offered for an ssl_only product
	moved, err := w.p.Due(ctx, "sweep", 12)
	if err != nil {
		t.Fatal(err)
	}
	if len(moved) != 2 || w.alias(t, "firefox-latest") != "Firefox-2.0" || w.alias(t, "firefox-latest-ssl") != "Firefox-2.0-SSL" {
		t.Fatalf("moved %+v; aliases %s, %s", moved, w.alias(t, "firefox-latest"), w.alias(t, "firefox-latest-ssl"))
	}
	for _, m := range moved {
		if m.From != map[string]string{"firefox-latest": "Firefox-1.5", "firefox-latest-ssl": ""}[m.Alias] {
			t.Errorf("%s moved from %q", m.Alias, m.From)
		}
	}
	// Again: nothing to do.
	if moved, err := w.p.Due(ctx, "sweep", 13); err != nil || len(moved) != 0 || w.moves(t) != 2 {
		t.Errorf("a second judgement moved %+v (%v), %d moves", moved, err, w.moves(t))
	}
}

// TestPromoteNothingWithoutAliases: with no releases.aliases nothing is
// judged nor moved, and asking by hand says why.
func TestPromoteNothingWithoutAliases(t *testing.T) {
	t.Parallel()
	w := newAliasWorld(t)
	ctx := context.Background()
	for _, loc := range []string{"Firefox-3.0/win", "Firefox-3.0/linux"} {
		w.hold(t, loc, "a", "b", "c")
	}
	w.p.Config.Releases.Aliases = nil
	if moved, err := w.p.Due(ctx, "sweep", 1); err != nil || len(moved) != 0 {
		t.Errorf("Due: %+v %v", moved, err)
	}
	promote.Checker{P: w.p}.AfterMarks(ctx, "3.0", "prime", 1)
	if _, err := w.p.Release(ctx, promote.Request{Release: "3.0"}); err == nil || !strings.Contains(err.Error(), "releases.aliases") {
		t.Errorf("by hand: %v", err)
	}
	if w.alias(t, "firefox-latest") != "Firefox-1.5" || w.moves(t) != 0 {
		t.Errorf("something moved")
	}
}

func TestReleaseOf(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pattern, product, want string
		ok                     bool
	}{
		{"Firefox-{release}", "Firefox-1.5", "1.5", true},
		{"Firefox-{release}", "firefox-1.5", "1.5", true},
		{"Firefox-{release}-SSL", "Firefox-1.5-SSL", "1.5", true},
		{"Firefox-{release}", "Firefox-1.5-SSL", "1.5-SSL", true},
		{"Firefox-{release}-SSL", "Firefox-1.5", "", false},
		{"Firefox-{release}", "Firefox-", "", false},
		{"Firefox-{release}", "Thunderbird-1.5", "", false},
	} {
		if got, ok := promote.ReleaseOf(c.pattern, c.product); got != c.want || ok != c.ok {
			t.Errorf("ReleaseOf(%q, %q) = %q %v, want %q %v", c.pattern, c.product, got, ok, c.want, c.ok)
		}
	}
}
