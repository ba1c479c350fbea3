package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/store"
	"github.com/mirrorsentry/sentry/sentry/web"
)

// uptakeFixture is a bouncer database as an admin keeps it: three
// products (one ssl_only), three operating systems, locations some
// mirrors hold and one none does; mirrors with a region and without, of
// both schemes, one switched off, one of rating 0; rows active and
// healthy, active but unhealthy, and for the switched-off mirror.
func uptakeFixture(t *testing.T) string {
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
	os := map[string]int{}
	for _, n := range []string{"win", "linux", "mac"} {
		os[n] = factory.OS(ctx, t, db, &factory.OSOpts{Name: n}).ID
	}
	ff := factory.Product(ctx, t, db, &factory.ProductOpts{Name: "Firefox-1.5"}).ID
	ffs := factory.Product(ctx, t, db, &factory.ProductOpts{Name: "Firefox-1.5-SSL", SSLOnly: factory.Ptr(true)}).ID
	tb := factory.Product(ctx, t, db, &factory.ProductOpts{Name: "Thunderbird-1.5"}).ID
	loc := func(product int, osName string) int {
		return factory.Location(ctx, t, db, &factory.LocationOpts{ProductID: product, OSID: os[osName], Path: "/" + osName + "/:lang/setup"}).ID
	}
	fWin, fLinux, fMac, fsWin, tWin, tLinux := loc(ff, "win"), loc(ff, "linux"), loc(ff, "mac"), loc(ffs, "win"), loc(tb, "win"), loc(tb, "linux")
	_ = fMac // held by no mirror
	mirror := func(name, scheme string, rating int, active bool, regions []int) int {
		return factory.Mirror(ctx, t, db, &factory.MirrorOpts{Name: name, BaseURL: scheme + name + ".example.org/pub",
			Rating: factory.Ptr(rating), Active: factory.Ptr(active), Regions: regions}).ID
	}
	a := mirror("a", "http://", 100, true, []int{1})
	b := mirror("b", "http://", 50, true, nil) // no region: never offered
	c := mirror("c", "https://", 30, true, []int{1})
	d := mirror("d", "http://", 20, false, []int{1}) // switched off
	e := mirror("e", "http://", 0, true, []int{1})
	row := func(l, m int, active, healthy bool) {
		factory.LocationMirror(ctx, t, db, &factory.LocationMirrorOpts{LocationID: l, MirrorID: m, Active: &active, Healthy: &healthy})
	}
	row(fWin, a, true, true)
	row(fWin, b, true, true)
	row(fWin, c, true, true)
	row(fWin, d, true, true)
	row(fLinux, a, true, false) // active, unhealthy: the admin app counts it, sentry does not
	row(fLinux, e, true, true)
	row(fLinux, b, false, false)
	row(fsWin, c, true, true)
	row(fsWin, a, true, true) // http:// for an ssl_only product: never offered
	row(tWin, b, true, true)
	row(tLinux, e, true, true) // rating 0: listed, available 0
	srv := world.ServePage(t, web.Options{Reporter: report.New(db, nil)})
	return srv.URL
}

func getWith(t *testing.T, u, accept string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String(), resp.Header
}

// TestUptakeAPIAsTheAdminApp: GET /api/uptake/ answers as the bouncer
// admin app (Mozilla's tuxedo) does, byte for byte: its XML declaration,
// <mirror_uptake> with an <item> per location some active mirror holds,
// the elements in its order (available, product, total, os), the numbers
// as integers (available: the ratings of the active mirrors whose row is
// active, healthy or not; total: those of every active mirror), text/xml;
// product and os matched exactly, or by substring in any case with
// fuzzy; its errors 101 and 102.
func TestUptakeAPIAsTheAdminApp(t *testing.T) {
	t.Parallel()
	base := uptakeFixture(t)
	item := func(available, product, total, os string) string {
		return "<item><available>" + available + "</available><product>" + product + "</product><total>" + total + "</total><os>" + os + "</os></item>"
	}
	const head = `<?xml version="1.0" encoding="utf-8"?>`
	// The active mirrors: a 100, b 50, c 30, e 0.
	tests := []struct {
		query string
		code  int
		want  string
	}{
		{"product=Firefox-1.5", 200, head + "<mirror_uptake>" + item("100", "Firefox-1.5", "180", "linux") +
			item("180", "Firefox-1.5", "180", "win") + "</mirror_uptake>"},
		{"product=Firefox-1.5&os=win", 200, head + "<mirror_uptake>" + item("180", "Firefox-1.5", "180", "win") + "</mirror_uptake>"},
		{"os=linux", 200, head + "<mirror_uptake>" + item("100", "Firefox-1.5", "180", "linux") +
			item("0", "Thunderbird-1.5", "180", "linux") + "</mirror_uptake>"},
		{"product=firefox&fuzzy=true", 200, head + "<mirror_uptake>" + item("100", "Firefox-1.5", "180", "linux") +
			item("180", "Firefox-1.5", "180", "win") + item("130", "Firefox-1.5-SSL", "180", "win") + "</mirror_uptake>"},
		{"os=WI&fuzzy=1", 200, head + "<mirror_uptake>" + item("180", "Firefox-1.5", "180", "win") +
			item("130", "Firefox-1.5-SSL", "180", "win") + item("50", "Thunderbird-1.5", "180", "win") + "</mirror_uptake>"},
		{"product=SSL&os=win&fuzzy=yes", 200, head + "<mirror_uptake>" + item("130", "Firefox-1.5-SSL", "180", "win") + "</mirror_uptake>"},
		{"product=Firefox-1.5&os=mac", 200, head + "<mirror_uptake/>"},
		{"product=firefox", 400, head + `<error number="102">No products found</error>`},
		{"product=Firefox-1.5&os=windows", 400, head + `<error number="102">No OSes found</error>`},
		{"", 400, head + `<error number="101">product and/or os are required GET parameters.</error>`},
		{"fuzzy=true", 400, head + `<error number="101">product and/or os are required GET parameters.</error>`},
	}
	for _, tt := range tests {
		for _, path := range []string{"/api/uptake/", "/api/uptake"} {
			code, body, h := getWith(t, base+path+"?"+tt.query, "")
			if code != tt.code || body != tt.want || h.Get("Content-Type") != "text/xml" {
				t.Errorf("%s?%s: %d %s\n%s\nwant %d text/xml\n%s", path, tt.query, code, h.Get("Content-Type"), body, tt.code, tt.want)
			}
		}
	}
}

// TestUptakeAPIInJSON: asked for JSON, the uptake API gives every
// location of the matching products (held or not), with the admin app's
// numbers and sentry's: the verified uptake among the mirrors the
// redirector can offer for the product (a region, its scheme).
func TestUptakeAPIInJSON(t *testing.T) {
	t.Parallel()
	base := uptakeFixture(t)
	code, body, h := getWith(t, base+"/api/uptake/?"+url.Values{"product": {"Firefox"}, "fuzzy": {"1"}}.Encode(), "application/json")
	if code != 200 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s: %s", code, h.Get("Content-Type"), body)
	}
	var got struct {
		Items []report.UptakeItem `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	type nums struct {
		available, total, mirrors, eligibleAvailable, eligibleTotal int64
		uptake                                                      float64 // -1: null
	}
	want := map[string]nums{
		// Offerable for the plain product: a (100) and e (0); b has no
		// region, c is https://, d is switched off.
		"Firefox-1.5/linux": {100, 180, 2, 0, 100, 0}, // a unhealthy, e rating 0
		"Firefox-1.5/mac":   {0, 180, 0, 0, 100, 0},
		"Firefox-1.5/win":   {180, 180, 3, 100, 100, 1},
		// For the ssl_only product: c (30) only.
		"Firefox-1.5-SSL/win": {130, 180, 2, 30, 30, 1},
	}
	if len(got.Items) != len(want) {
		t.Fatalf("%d items, want %d: %s", len(got.Items), len(want), body)
	}
	order := []string{"Firefox-1.5/linux", "Firefox-1.5/mac", "Firefox-1.5/win", "Firefox-1.5-SSL/win"}
	for i, it := range got.Items {
		key := it.Product + "/" + it.OS
		w := want[key]
		up := -1.0
		if it.EligibleUptake != nil {
			up = *it.EligibleUptake
		}
		if key != order[i] || it.Available != w.available || it.Total != w.total || int64(it.Holders) != w.mirrors ||
			it.EligibleAvailable != w.eligibleAvailable || it.EligibleTotal != w.eligibleTotal || up != w.uptake || it.Path == "" {
			t.Errorf("item %d %s: %+v (uptake %v), want %s %+v", i, key, it, up, order[i], w)
		}
	}
	// Its errors are JSON too.
	code, body, _ = getWith(t, base+"/api/uptake/", "application/json, text/xml;q=0.5")
	var e struct {
		Error  string `json:"error"`
		Number int    `json:"number"`
	}
	if err := json.Unmarshal([]byte(body), &e); code != 400 || err != nil || e.Number != 101 {
		t.Errorf("no parameters, JSON: %d %v %s", code, err, body)
	}
	// application/json at q=0 is not asked for.
	if _, body, h := getWith(t, base+"/api/uptake/?product=Firefox-1.5", "application/json;q=0, text/xml"); h.Get("Content-Type") != "text/xml" || !strings.HasPrefix(body, "<?xml") {
		t.Errorf("Accept application/json;q=0: %s %q", h.Get("Content-Type"), body)
	}
}
