package factory_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestDefaultsAndOverrides: every function inserts its row with the
// defaults its Opts documents, and what an Opts sets instead; the rows
// hang together (a location's product and os, a mirror's region and
// settings) as the redirector reads them.
func TestDefaultsAndOverrides(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, pgtest.NewDB(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	db := st.Pool()

	m := factory.Mirror(ctx, t, db, nil)
	if !strings.HasPrefix(m.Name, "mirror-") || m.BaseURL != "http://"+m.Name+".example.org/pub" || m.Rating != 0 || !m.Active {
		t.Errorf("default mirror: %+v", m)
	}
	other := factory.Mirror(ctx, t, db, nil)
	if other.Name == m.Name {
		t.Errorf("two default mirrors named %s", m.Name)
	}
	set := factory.Mirror(ctx, t, db, &factory.MirrorOpts{Name: "set", BaseURL: "https://set.example/pub",
		Rating: factory.Ptr(50), Active: factory.Ptr(false), Regions: []int{3, 7},
		Settings: &factory.MirrorSettingsOpts{PrimeMode: "trigger", TriggerURL: "https://set.example/hook",
			MaxConcurrency: factory.Ptr(2), MaxRate: factory.Ptr(1.5), Contact: "admin@set.example"}})
	if *set != (factory.MirrorRow{ID: set.ID, Name: "set", BaseURL: "https://set.example/pub", Rating: 50, Active: false}) {
		t.Errorf("mirror with options: %+v", set)
	}
	var regions, mode, trigger, contact string
	var conc int
	var rate float64
	var purge *string
	if err := db.QueryRow(ctx, `SELECT (SELECT string_agg(region_id::text, ',' ORDER BY region_id) FROM geoip_mirror_region_map WHERE mirror_id = s.mirror_id),
		prime_mode, trigger_url, max_concurrency, max_rate, contact, purge_method FROM sentry_mirror_settings s WHERE mirror_id = $1`, set.ID).
		Scan(&regions, &mode, &trigger, &conc, &rate, &contact, &purge); err != nil {
		t.Fatal(err)
	}
	if regions != "3,7" || mode != "trigger" || trigger != "https://set.example/hook" || conc != 2 || rate != 1.5 ||
		contact != "admin@set.example" || purge != nil {
		t.Errorf("regions %s, settings %s %s %d %v %s %v", regions, mode, trigger, conc, rate, contact, purge)
	}
	factory.MirrorSettings(ctx, t, db, &factory.MirrorSettingsOpts{MirrorID: m.ID})
	factory.RegionMap(ctx, t, db, &factory.RegionMapOpts{MirrorID: m.ID})
	var noRegion, defaults int
	if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM geoip_mirror_region_map WHERE mirror_id = $2),
		(SELECT count(*) FROM sentry_mirror_settings s JOIN geoip_mirror_region_map g USING (mirror_id)
		 WHERE s.mirror_id = $1 AND prime_mode = 'pull' AND trigger_url IS NULL AND max_concurrency IS NULL AND g.region_id = 1)`,
		m.ID, other.ID).Scan(&noRegion, &defaults); err != nil {
		t.Fatal(err)
	}
	if noRegion != 0 || defaults != 1 {
		t.Errorf("a default mirror has %d regions (want none); default settings and region %d (want 1)", noRegion, defaults)
	}

	p := factory.Product(ctx, t, db, &factory.ProductOpts{Name: "Firefox-1.5", Langs: []string{"en-US", "de"}})
	win := factory.OS(ctx, t, db, &factory.OSOpts{Name: "win"})
	loc := factory.Location(ctx, t, db, &factory.LocationOpts{ProductID: p.ID, OSID: win.ID, Path: "/firefox/releases/1.5/win32/:lang/x.exe"})
	bare := factory.Location(ctx, t, db, &factory.LocationOpts{Path: "/y"})
	if loc.ProductID != p.ID || loc.OSID != win.ID || bare.ProductID == p.ID || bare.OSID == win.ID || bare.ProductID == 0 || bare.OSID == 0 {
		t.Errorf("locations %+v and %+v (product %d, os %d)", loc, bare, p.ID, win.ID)
	}
	factory.Alias(ctx, t, db, &factory.AliasOpts{Alias: "firefox-latest", RelatedProduct: p.Name})
	factory.LocationMirror(ctx, t, db, &factory.LocationMirrorOpts{LocationID: loc.ID, MirrorID: set.ID, Active: factory.Ptr(true)})
	factory.LocationMirror(ctx, t, db, &factory.LocationMirrorOpts{LocationID: bare.ID, MirrorID: set.ID})
	var langs, alias, marks string
	var active bool
	if err := db.QueryRow(ctx, `SELECT (SELECT string_agg(language, ',' ORDER BY language) FROM mirror_product_langs WHERE product_id = $1),
		(SELECT related_product FROM mirror_aliases WHERE alias = 'firefox-latest'),
		(SELECT string_agg(active::text || '/' || healthy::text, ',' ORDER BY location_id) FROM mirror_location_mirror_map),
		(SELECT active FROM mirror_products WHERE id = $1)`, p.ID).Scan(&langs, &alias, &marks, &active); err != nil {
		t.Fatal(err)
	}
	if langs != "de,en-US" || alias != "Firefox-1.5" || marks != "true/true,false/true" || !active {
		t.Errorf("languages %s, alias of %s, marks %s, product active %v", langs, alias, marks, active)
	}
}
