package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestOfferableSQLAgreesWithDecide: on a table of mirrors (the admin's
// switch, a region row or none, base URLs of either scheme, of neither,
// in upper case) and products (ssl_only or not), the SQL conditions the
// views count with say what decide's rules say: OfferableSQL is
// decide.OfferFor with the product's scheme, OfferableForSchemeSQL with
// the scheme given, ReleaseOfferableSQL is decide.OfferForRelease over a
// release's products (none recorded: either scheme), HasRegionSQL the
// region join.
func TestOfferableSQLAgreesWithDecide(t *testing.T) {
	t.Parallel()
	st, _ := setup(t)
	ctx, pool := context.Background(), st.Pool()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	type mirror struct {
		id     int
		active bool
		region bool
		base   string
	}
	var mirrors []mirror
	for i, base := range []string{"http://m.example/pub", "https://m.example/pub", "HTTP://m.example/pub",
		"ftp://m.example/pub", "https//m.example/pub"} {
		for _, active := range []bool{true, false} {
			for _, region := range []bool{true, false} {
				o := &factory.MirrorOpts{Name: fmt.Sprintf("m%d-%v-%v", i, active, region), BaseURL: base, Active: factory.Ptr(active)}
				if region {
					o.Regions = []int{1, 2} // two regions: still one mirror
				}
				mirrors = append(mirrors, mirror{factory.Mirror(ctx, t, pool, o).ID, active, region, base})
			}
		}
	}
	plain := factory.Product(ctx, t, pool, &factory.ProductOpts{Name: "Firefox-1.5"})
	ssl := factory.Product(ctx, t, pool, &factory.ProductOpts{Name: "Firefox-1.5-SSL", SSLOnly: factory.Ptr(true)})
	releases := map[string][]int{"plain": {plain.ID}, "ssl": {ssl.ID}, "both": {plain.ID, ssl.ID}, "unknown": nil}
	sslOf := map[int]bool{plain.ID: false, ssl.ID: true}
	relIDs := map[string]int64{}
	for name, products := range releases {
		var id int64
		if err := pool.QueryRow(ctx, `INSERT INTO sentry_releases (name, manifest_url, manifest_sha256, file_count, total_bytes)
			VALUES ($1, 'http://master/SHA256SUMS', '', 0, 0) RETURNING id`, name).Scan(&id); err != nil {
			t.Fatal(err)
		}
		if err := st.SetReleaseProducts(ctx, id, products); err != nil {
			t.Fatal(err)
		}
		relIDs[name] = id
	}
	ask := func(cond string, args ...any) bool {
		t.Helper()
		var b bool
		if err := pool.QueryRow(ctx, `SELECT `+cond+` FROM mirror_mirrors m, mirror_products p, sentry_releases r
			WHERE m.id = $1 AND p.id = $2 AND r.id = $3`, args...).Scan(&b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, m := range mirrors {
		for _, p := range []int{plain.ID, ssl.ID} {
			args := []any{m.id, p, relIDs["plain"]}
			want := decide.OfferFor(m.active, m.region, m.base, decide.ProductScheme(sslOf[p])) == decide.Offerable
			if got := ask(store.OfferableSQL("m", "p"), args...); got != want {
				t.Errorf("OfferableSQL(%+v, ssl_only %v) = %v, decide says %v", m, sslOf[p], got, want)
			}
		}
		for _, s := range []decide.Scheme{decide.HTTP, decide.HTTPS} {
			want := decide.OfferFor(m.active, m.region, m.base, s) == decide.Offerable
			if got := ask(store.OfferableForSchemeSQL("m", "'"+string(s)+"'"), m.id, plain.ID, relIDs["plain"]); got != want {
				t.Errorf("OfferableForSchemeSQL(%+v, %s) = %v, decide says %v", m, s, got, want)
			}
		}
		for name, products := range releases {
			var ssls []bool
			for _, p := range products {
				ssls = append(ssls, sslOf[p])
			}
			want := decide.OfferForRelease(m.active, m.region, m.base, ssls) == decide.Offerable
			if got := ask(store.ReleaseOfferableSQL("m", "r"), m.id, plain.ID, relIDs[name]); got != want {
				t.Errorf("ReleaseOfferableSQL(%+v, release %s) = %v, decide says %v", m, name, got, want)
			}
		}
		if got := ask(store.HasRegionSQL("m"), m.id, plain.ID, relIDs["plain"]); got != m.region {
			t.Errorf("HasRegionSQL(%+v) = %v", m, got)
		}
	}

	// Recording the same products again writes nothing.
	var before, after string
	if err := pool.QueryRow(ctx, `SELECT xmin::text FROM sentry_releases WHERE id = $1`, relIDs["both"]).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if err := st.SetReleaseProducts(ctx, relIDs["both"], []int{ssl.ID, plain.ID, ssl.ID}); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT xmin::text FROM sentry_releases WHERE id = $1`, relIDs["both"]).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Errorf("the same products recorded again rewrote the release's row")
	}
}

// TestGoodCopiesCountsWhatTheRedirectorOffers: GoodCopiesSQL counts, per
// location and per scheme its product's users arrive with, the mirrors
// the redirector offers holding it good: not a mirror without a region,
// not one of the other scheme, not one switched off, not a row that is
// off or unhealthy; withdrawn locations and inactive products aside.
func TestGoodCopiesCountsWhatTheRedirectorOffers(t *testing.T) {
	t.Parallel()
	st, _ := setup(t)
	ctx, pool := context.Background(), st.Pool()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	plain := factory.Product(ctx, t, pool, &factory.ProductOpts{Name: "Firefox-1.5"})
	ssl := factory.Product(ctx, t, pool, &factory.ProductOpts{Name: "Firefox-1.5-SSL", SSLOnly: factory.Ptr(true)})
	off := factory.Product(ctx, t, pool, &factory.ProductOpts{Name: "Firefox-1.5-old", Active: factory.Ptr(false)})
	loc := func(p int, path string) int {
		return factory.Location(ctx, t, pool, &factory.LocationOpts{ProductID: p, Path: path}).ID
	}
	plainLoc, sslLoc, withdrawn := loc(plain.ID, "/r/plain.exe"), loc(ssl.ID, "/r/ssl.exe"), loc(plain.ID, "/r/gone.exe")
	loc(off.ID, "/r/old.exe")
	if _, err := pool.Exec(ctx, `INSERT INTO sentry_withdrawn_locations (location_id) VALUES ($1)`, withdrawn); err != nil {
		t.Fatal(err)
	}
	mirror := func(name, base string, region, active bool) int {
		o := &factory.MirrorOpts{Name: name, BaseURL: base, Active: factory.Ptr(active)}
		if region {
			o.Regions = []int{1}
		}
		return factory.Mirror(ctx, t, pool, o).ID
	}
	httpM := mirror("http", "http://a.example/pub", true, true)
	httpsM := mirror("https", "https://b.example/pub", true, true)
	noRegion := mirror("noregion", "https://c.example/pub", false, true)
	switched := mirror("switched", "https://d.example/pub", true, false)
	unhealthy := mirror("unhealthy", "https://e.example/pub", true, true)
	mark := func(l, m int, active, healthy bool) {
		factory.LocationMirror(ctx, t, pool, &factory.LocationMirrorOpts{LocationID: l, MirrorID: m,
			Active: factory.Ptr(active), Healthy: factory.Ptr(healthy)})
	}
	for _, l := range []int{plainLoc, sslLoc, withdrawn} {
		mark(l, httpM, true, true)
		mark(l, noRegion, true, true)
		mark(l, switched, true, true)
		mark(l, unhealthy, true, false)
	}
	mark(plainLoc, httpsM, true, true)
	var rel int64
	if err := pool.QueryRow(ctx, `INSERT INTO sentry_releases (name, manifest_url, manifest_sha256, file_count, total_bytes)
		VALUES ('1.5', 'http://master/SHA256SUMS', '', 0, 0) RETURNING id`).Scan(&rel); err != nil {
		t.Fatal(err)
	}
	if err := st.SetReleaseProducts(ctx, rel, []int{plain.ID, ssl.ID, off.ID}); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, store.GoodCopiesSQL, []int64{rel})
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var relID int64
		var l, n int
		var product, path, scheme string
		if err := rows.Scan(&relID, &l, &product, &path, &scheme, &n); err != nil {
			t.Fatal(err)
		}
		got[path+" "+scheme] = n
	}
	want := map[string]int{
		"/r/plain.exe http://": 1, "/r/plain.exe https://": 1, // the http mirror; the https one
		"/r/ssl.exe https://": 0, // the http mirror is of the wrong scheme, the others not offered or unhealthy
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("good copies %v, want %v", got, want)
	}
}
