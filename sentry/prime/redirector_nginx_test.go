package prime_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/realmirror"
	"github.com/mirrorsentry/sentry/internal/testkit/redirector"
	"github.com/mirrorsentry/sentry/internal/testkit/testca"
	"github.com/mirrorsentry/sentry/internal/testkit/testnet"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// staticSite is one site of a static nginx: a tree of its own, served
// under /pub/ over http or https.
type staticSite struct {
	name  string
	https bool
	tree  string
	url   string // its base URL, once started
}

// startStaticSites starts one nginx serving every site on a socket of its
// own, the https ones with a certificate of ca for 127.0.0.1.
func startStaticSites(t *testing.T, ca *testca.CA, sites []*staticSite) *realmirror.Server {
	t.Helper()
	dir := t.TempDir()
	var files []*os.File
	var servers []string
	for _, s := range sites {
		f, addr := testnet.Listen(t)
		defer f.Close()
		files = append(files, f)
		listen, extra, scheme := addr.String(), "", "http"
		if s.https {
			cert, key := ca.Issue(t, []string{"127.0.0.1"}, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour)).Write(t, dir, s.name)
			listen, extra, scheme = listen+" ssl", fmt.Sprintf("ssl_certificate %s;\n        ssl_certificate_key %s;", cert, key), "https"
		}
		s.url = scheme + "://" + addr.String() + "/pub"
		servers = append(servers, fmt.Sprintf(`    server {
        listen %s;
        %s
        location /pub/ { alias %s/; }
    }`, listen, extra, filepath.Join(s.tree, "pub")))
	}
	return realmirror.Nginx(t, "static", dir, strings.Join(servers, "\n"), files)
}

// TestRedirectorPicksLandOnRightBytesWithRealNginx is issue 24's "done
// when": real PostgreSQL and real nginx mirrors, a database shaped like
// Mozilla's, and sentry's marks read through the deployed redirector's
// query (internal/testkit/redirector: aliases, case-insensitive names,
// healthy first then the healthy=false fallback, the region join, the
// scheme filter, the exception join that does not filter). The database:
//   - Firefox-1.5 (en-US, de, fr), its win32 location stored
//     percent-escaped as Mozilla's data writes it, its linux one raw;
//     Firefox-1.5-SSL (ssl_only), its win32 location raw with spaces;
//     firefox-1.5-source, in another case than its pattern, without
//     languages; an alias of each;
//   - mirrors: an nginx proxy_cache of the master (http); a static nginx
//     with a corrupt file and a missing one (http); two https static
//     nginx (a test CA), one in two regions, the other lacking the fr
//     installer but with the admin's language exception for fr on it; a
//     static one with the whole release and no region row; a dead one in
//     a region, with rows an earlier checker left active (the fallback).
//
// After the prime, a sweep, a respin (a file changed on the master and in
// the manifest; one https mirror syncs it, the others keep the old bytes),
// a withdrawal (a file removed from the manifest) with a sweep, the
// cache's admin switch turned off (its http users left with the fallback)
// with a sweep, and a deep sweep: for every (product or alias, os, language, scheme) every mirror
// the redirector may pick, fallback included, is followed by the URL it
// builds and its bytes hashed against the manifest — every one is right —
// and every mirror it can offer that serves every language of the
// location right (fetched directly) is among the first candidates: none
// withheld. It logs the counts as issue 24 gave them.
func TestRedirectorPicksLandOnRightBytesWithRealNginx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	langs := []string{"en-US", "de", "fr"}
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{}}
	win := func(l string) string { return "win32/" + l + "/Firefox Setup 1.5.exe" }
	lin := func(l string) string { return "linux-x86_64/" + l + "/firefox-1.5.tar.bz2" }
	const source = "source/firefox-1.5.source.tar.xz"
	for _, l := range langs {
		rel.Files[win(l)] = localmirror.Content(win(l), 96<<10)
		rel.Files[lin(l)] = localmirror.Content(lin(l), 128<<10)
	}
	rel.Files[source] = localmirror.Content(source, 64<<10)

	ca := testca.New(t, "sentry redirector test CA")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	w := world.New(t, &world.Options{Release: rel, Config: func(cfg *config.Config) {
		def := config.Default()
		cfg.Checks = def.Checks
		cfg.Checks.Contact = "https://example.org/sentry-e2e"
		cfg.Checks.CAFile = caFile
		cfg.Checks.PerMirrorRate = 100_000
		cfg.Checks.Retries = 1
		cfg.Checks.RetryWaitMin = config.Duration(50 * time.Millisecond)
		cfg.Checks.RetryWaitMax = config.Duration(200 * time.Millisecond)
		cfg.Releases.Products = []string{"Firefox-{release}", "Firefox-{release}-SSL", "Firefox-{release}-source"}
		cfg.Prime.Deadline = config.Duration(3 * time.Second)
	}})
	pool := w.Pool()

	// The mirrors' trees: what rsync would have left there.
	trees := map[string]string{}
	for _, n := range []string{"corrupt", "https-a", "https-b", "noregion"} {
		trees[n] = t.TempDir()
		for p, b := range rel.Files {
			switch {
			case n == "corrupt" && p == win("de"):
				b = localmirror.Flip(b)
			case n == "corrupt" && p == lin("fr"), n == "https-b" && p == win("fr"):
				continue
			}
			writeTree(t, trees[n], rel.Dir+p, b)
		}
	}
	sites := []*staticSite{{name: "corrupt", tree: trees["corrupt"]}, {name: "https-a", https: true, tree: trees["https-a"]},
		{name: "https-b", https: true, tree: trees["https-b"]}, {name: "noregion", tree: trees["noregion"]}}
	startStaticSites(t, ca, sites)
	cache := startCacheNginx(t, "cache", w.Master, "")
	dead, err := localmirror.DeadURL()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	mirror := func(name, base, mode string, rating int, regions []int) {
		ids[name] = w.Mirror(t, &factory.MirrorOpts{Name: name, BaseURL: base, Rating: factory.Ptr(rating), Regions: regions,
			Settings: &factory.MirrorSettingsOpts{PrimeMode: mode}})
	}
	mirror("cache", cache.BaseURL, "pull", 30, []int{1})
	mirror("corrupt", sites[0].url, "passive", 20, []int{1})
	mirror("https-a", sites[1].url, "passive", 30, []int{1, 2})
	mirror("https-b", sites[2].url, "passive", 20, []int{2})
	mirror("noregion", sites[3].url, "passive", 40, []int{})
	mirror("dead", dead, "pull", 50, []int{1})
	names := map[int]string{}
	for n, id := range ids {
		names[id] = n
	}

	// The bouncer rows, as Mozilla's data holds them.
	product := func(name string, ssl bool, langs []string) int {
		return factory.Product(ctx, t, pool, &factory.ProductOpts{Name: name, SSLOnly: factory.Ptr(ssl), Langs: langs}).ID
	}
	plain, ssl, src := product("Firefox-1.5", false, langs), product("Firefox-1.5-SSL", true, langs), product("firefox-1.5-source", false, nil)
	osID := map[string]int{}
	for _, n := range []string{"win", "linux", "src"} {
		osID[n] = factory.OS(ctx, t, pool, &factory.OSOpts{Name: n}).ID
	}
	var locs []int
	location := func(p int, os, path string) int {
		id := factory.Location(ctx, t, pool, &factory.LocationOpts{ProductID: p, OSID: osID[os], Path: path}).ID
		locs = append(locs, id)
		return id
	}
	plainWin := location(plain, "win", "/firefox/releases/1.5/win32/:lang/Firefox%20Setup%201.5.exe")
	location(plain, "linux", "/firefox/releases/1.5/linux-x86_64/:lang/firefox-1.5.tar.bz2")
	sslWin := location(ssl, "win", "/firefox/releases/1.5/win32/:lang/Firefox Setup 1.5.exe")
	location(src, "src", "/firefox/releases/1.5/source/firefox-1.5.source.tar.xz")
	for alias, p := range map[string]string{"firefox-latest": "Firefox-1.5", "firefox-latest-ssl": "Firefox-1.5-SSL",
		"firefox-source-latest": "firefox-1.5-source"} {
		factory.Alias(ctx, t, pool, &factory.AliasOpts{Alias: alias, RelatedProduct: p})
	}
	// An earlier checker left the dead mirror's rows active.
	for _, l := range locs {
		factory.LocationMirror(ctx, t, pool, &factory.LocationMirrorOpts{LocationID: l, MirrorID: ids["dead"],
			Active: factory.Ptr(true), Healthy: factory.Ptr(l == locs[len(locs)-1])})
	}
	// The admin excused https-b from fr, which it lacks.
	for _, l := range []int{plainWin, sslWin} {
		factory.LangException(ctx, t, pool, &factory.LangExceptionOpts{LocationID: l, MirrorID: ids["https-b"], Language: "fr"})
	}

	// Every request users make: by product name (in its pattern's case)
	// and by alias, each language of the product (any for one without),
	// over http and https.
	type asked struct {
		req   redirector.Request
		langs []string // the languages of the location's files
	}
	var requests []asked
	for _, p := range []struct {
		names []string
		oses  []string
		langs []string
	}{
		{[]string{"Firefox-1.5", "firefox-latest"}, []string{"win", "linux"}, langs},
		{[]string{"Firefox-1.5-SSL", "firefox-latest-ssl"}, []string{"win"}, langs},
		{[]string{"Firefox-1.5-source", "firefox-source-latest"}, []string{"src"}, []string{"en-US", "de"}},
	} {
		for _, n := range p.names {
			for _, o := range p.oses {
				for _, l := range p.langs {
					for _, https := range []bool{false, true} {
						requests = append(requests, asked{redirector.Request{Product: n, OS: o, Lang: l, HTTPS: https}, p.langs})
					}
				}
			}
		}
	}

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	t.Cleanup(client.CloseIdleConnections)
	fetch := func(u string) ([sha256.Size]byte, bool) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return [sha256.Size]byte{}, false
		}
		defer resp.Body.Close()
		h := sha256.New()
		if _, err := io.Copy(h, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			return [sha256.Size]byte{}, false
		}
		return [sha256.Size]byte(h.Sum(nil)), true
	}
	var total, good, noMirror, withheld int
	check := func(phase string) {
		t.Helper()
		// What each mirror serves now, fetched directly.
		right := map[int]map[string]bool{}
		for name, id := range ids {
			base := map[string]string{"cache": cache.BaseURL, "dead": dead}[name]
			for _, s := range sites {
				if s.name == name {
					base = s.url
				}
			}
			right[id] = map[string]bool{}
			for p, b := range w.Rel.Files {
				sum, ok := fetch(primer.FileURL(base, rel.Dir, p))
				right[id][p] = ok && sum == sha256.Sum256(b)
			}
		}
		var offerable []store.Mirror
		rows, err := pool.Query(ctx, `SELECT m.id, m.baseurl FROM mirror_mirrors m WHERE `+store.HasRegionSQL("m")+` AND m.active`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var m store.Mirror
			if err := rows.Scan(&m.ID, &m.BaseURL); err != nil {
				t.Fatal(err)
			}
			offerable = append(offerable, m)
		}
		rows.Close()
		for _, a := range requests {
			ans, err := redirector.Ask(ctx, pool, a.req)
			if err != nil {
				t.Fatal(err)
			}
			if ans == nil {
				t.Errorf("%s: %s: the redirector knows no such product, os or language", phase, a.req)
				continue
			}
			file := func(lang string) string {
				u, err := url.PathUnescape(strings.ReplaceAll(ans.Path, ":lang", lang))
				if err != nil {
					t.Fatalf("%s: %v", ans.Path, err)
				}
				return strings.TrimPrefix(u, rel.Dir)
			}
			asked := file(a.req.Lang)
			want, inManifest := w.Rel.Files[asked]
			// Every pick lands on the manifest's bytes.
			for id, u := range ans.URLs() {
				total++
				sum, ok := fetch(u)
				if !inManifest || !ok || sum != sha256.Sum256(want) {
					t.Errorf("%s: %s: the redirector may send the user to %s (%s, fallback %v): not the manifest's bytes of %s",
						phase, a.req, u, names[id], ans.Fallback, asked)
					continue
				}
				good++
			}
			if !inManifest {
				continue
			}
			// No good mirror the redirector can offer is withheld.
			scheme := decide.ProductScheme(ans.SSLOnly || a.req.HTTPS)
			var goodOnes []int
			for _, m := range offerable {
				if decide.SchemeOf(m.BaseURL) != scheme {
					continue
				}
				all := true
				for _, l := range a.langs {
					all = all && right[m.ID][file(l)]
				}
				if all {
					goodOnes = append(goodOnes, m.ID)
				}
			}
			if len(goodOnes) > 0 && len(ans.Mirrors()) == 0 {
				noMirror++
			}
			for _, id := range goodOnes {
				if ans.Fallback || !slices.Contains(ans.Mirrors(), id) {
					withheld++
					t.Errorf("%s: %s: %s serves every language of location %d right but is not offered (candidates %v, fallback %v)",
						phase, a.req, names[id], ans.LocationID, ans.Mirrors(), ans.Fallback)
				}
			}
		}
	}

	rep := w.Prime(t)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("prime: %s (%s)", rep.Outcome, rep.Reason)
	}
	if len(rep.Unresolved) != 0 || len(rep.MissingProducts) != 0 {
		t.Errorf("prime: unresolved %+v, missing products %v", rep.Unresolved, rep.MissingProducts)
	}
	check("after the prime")
	w.Sweep(t, false)
	check("after a sweep")

	// A respin of the linux de build: https-a syncs it, the others keep
	// the old bytes (the cache its cached copy).
	respun := lin("de")
	nb := localmirror.Content(respun+" respun", 128<<10)
	w.Publish(respun, nb)
	writeTree(t, trees["https-a"], rel.Dir+respun, nb)
	w.Sweep(t, false)
	check("after the respin and a sweep")

	// The source tarball leaves the manifest.
	w.Publish(source, nil)
	srep := w.Sweep(t, false)
	if len(srep.Withdrawn) != 1 {
		t.Errorf("withdrawn locations %+v, want the source location", srep.Withdrawn)
	}
	check("after the withdrawal and a sweep")

	// The cache's admin switches it off: the last good http copy of the
	// win32 and linux locations. Their http users get the fallback, and
	// it must not be the dead mirror sentry never verified.
	w.Exec(t, `UPDATE mirror_mirrors SET active = false WHERE id = $1`, ids["cache"])
	w.Sweep(t, false)
	check("after the cache is switched off and a sweep")
	w.Sweep(t, true)
	check("after a deep sweep")

	t.Logf("%d of %d redirects reached a good copy; %d answers were \"no mirror\" while good copies existed; %d good (mirror, location) pairs were withheld",
		good, total, noMirror, withheld)
	if good != total || noMirror != 0 || withheld != 0 || total == 0 {
		t.Errorf("%d of %d redirects reached a good copy, %d \"no mirror\" answers with good copies, %d pairs withheld", good, total, noMirror, withheld)
	}
}
