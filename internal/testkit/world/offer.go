package world

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// OfferWorld is a world whose mirrors sentry verifies alike but the
// deployed redirector does not offer alike (DESIGN section 2: a region
// row, the scheme), for the views that count only what it can offer. The
// release 1.5 has two products: Firefox-1.5 (plain: http:// mirrors for
// its http users, https:// ones for its https users; LocWin, LocLin) and
// Firefox-1.5-SSL (ssl_only: https:// mirrors only; LocSSLWin, stored
// percent-escaped as Mozilla's data writes it, and LocSSLLin). Mirrors,
// by name (IDs), with their ratings (Ratings):
//   - http-full: http://, a region, the whole release;
//   - https-full: https:// (a test CA, checks.ca_file), a region, lacking
//     OfferLacking: no https user of the linux locations reaches a good
//     copy;
//   - https-noregion: https://, the whole release, no region row: never
//     offered;
//   - upper: the whole release at an "HTTP://" base URL, a region: the
//     redirector's case-sensitive filter matches neither scheme;
//   - dead: http://, a region, unreachable, never verified by sentry, its
//     rows left active by an earlier checker.
//
// It ran a prime.
type OfferWorld struct {
	*World
	IDs       map[string]int
	Ratings   map[string]int
	SSL       int // Firefox-1.5-SSL's id
	LocSSLWin int
	LocSSLLin int
}

// OfferLacking is the file https-full lacks.
const OfferLacking = "linux-x86_64/de/firefox-1.5.tar.bz2"

// NewOfferWorld makes an offer world.
func NewOfferWorld(t testing.TB) *OfferWorld {
	t.Helper()
	ctx := context.Background()
	// The https mirrors: TLS in front of local static mirrors, made once
	// the world's release is.
	tlsFront := func() (*httptest.Server, *atomic.Pointer[localmirror.Server]) {
		var h atomic.Pointer[localmirror.Server]
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.Load().ServeHTTP(w, r)
		}))
		ts.StartTLS()
		t.Cleanup(ts.Close)
		return ts, &h
	}
	httpsFull, fullH := tlsFront()
	httpsNoRegion, noRegionH := tlsFront()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	var pems []byte
	for _, ts := range []*httptest.Server{httpsFull, httpsNoRegion} {
		pems = append(pems, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})...)
	}
	if err := os.WriteFile(ca, pems, 0o644); err != nil {
		t.Fatal(err)
	}
	w := New(t, &Options{Config: func(c *config.Config) { c.Checks.CAFile = ca }})
	pool := w.Pool()
	ow := &OfferWorld{World: w, IDs: map[string]int{}, Ratings: map[string]int{
		"http-full": 40, "https-full": 30, "https-noregion": 20, "upper": 10, "dead": 10,
	}}
	ow.SSL = factory.Product(ctx, t, pool, &factory.ProductOpts{Name: "Firefox-1.5-SSL", SSLOnly: factory.Ptr(true),
		Langs: []string{"en-US", "de"}}).ID
	linux := factory.OS(ctx, t, pool, &factory.OSOpts{Name: "linux-ssl"}).ID
	ow.LocSSLWin = factory.Location(ctx, t, pool, &factory.LocationOpts{ProductID: ow.SSL, OSID: w.WinOS,
		Path: "/firefox/releases/1.5/win32/:lang/Firefox%20Setup%201.5.exe"}).ID
	ow.LocSSLLin = factory.Location(ctx, t, pool, &factory.LocationOpts{ProductID: ow.SSL, OSID: linux, Path: PathLinux}).ID

	add := func(name, base string, regions []int) {
		ow.IDs[name] = w.Mirror(t, &factory.MirrorOpts{Name: name, BaseURL: base, Rating: factory.Ptr(ow.Ratings[name]), Regions: regions})
	}
	add("http-full", Static(t, "http-full", w.Rel).URL, nil)
	full := Static(t, "https-full", w.Rel)
	full.Remove(w.Rel, OfferLacking)
	fullH.Store(full)
	add("https-full", httpsFull.URL+"/pub", nil)
	noRegionH.Store(Static(t, "https-noregion", w.Rel))
	add("https-noregion", httpsNoRegion.URL+"/pub", []int{})
	add("upper", "HTTP://"+strings.TrimPrefix(Static(t, "upper", w.Rel).URL, "http://"), nil)
	dead, err := localmirror.DeadURL()
	if err != nil {
		t.Fatal(err)
	}
	add("dead", dead, nil)
	for _, l := range []int{w.LocWin, w.LocLin, ow.LocSSLWin, ow.LocSSLLin} {
		factory.LocationMirror(ctx, t, pool, &factory.LocationMirrorOpts{LocationID: l, MirrorID: ow.IDs["dead"],
			Active: factory.Ptr(true), Healthy: factory.Ptr(false)})
	}
	w.Prime(t)
	return ow
}
