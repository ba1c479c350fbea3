package primer

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/checks"
)

// dualStack serves h4 on 127.0.0.1:PORT and h6 on [::1]:PORT, and returns
// the base URL of a host name resolving to both, with a client that
// resolves it so. Each server's requests are counted by method. It skips
// on a host without an IPv6 loopback.
type dualStack struct {
	base   string
	client *checks.Client
	mu     sync.Mutex
	seen   map[string]map[string]int // "v4" or "v6" → method → requests
}

func (d *dualStack) count(side, method string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[side][method]
}

func newDualStack(t *testing.T, h4, h6 http.HandlerFunc) *dualStack {
	t.Helper()
	d := &dualStack{seen: map[string]map[string]int{"v4": {}, "v6": {}}}
	counted := func(side string, h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			d.mu.Lock()
			d.seen[side][r.Method]++
			d.mu.Unlock()
			h(w, r)
		}
	}
	var ln4, ln6 net.Listener
	for try := 0; ; try++ {
		var err error
		if ln4, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		port := ln4.Addr().(*net.TCPAddr).Port
		if ln6, err = net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port))); err == nil {
			break
		}
		ln4.Close()
		if probe, perr := net.Listen("tcp6", "[::1]:0"); perr != nil {
			t.Skipf("this host has no IPv6 loopback (::1): %v", perr)
		} else {
			probe.Close()
		}
		if try == 20 {
			t.Fatalf("no port free on both 127.0.0.1 and ::1: %v", err)
		}
	}
	for _, s := range []struct {
		ln net.Listener
		h  http.HandlerFunc
	}{{ln4, counted("v4", h4)}, {ln6, counted("v6", h6)}} {
		srv := httptest.NewUnstartedServer(s.h)
		srv.Listener = s.ln
		srv.Start()
		t.Cleanup(srv.Close)
	}
	c, err := checks.NewClient(checks.ClientOptions{
		UserAgent: "sentry/primer-test (+https://example.org/contact)", ConnectTimeout: 5 * time.Second,
		HeaderTimeout: 5 * time.Second, BodyIdleTimeout: 5 * time.Second, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond,
		Resolver: func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	d.client = c
	d.base = "http://dual.test:" + strconv.Itoa(ln4.Addr().(*net.TCPAddr).Port)
	return d
}

// TestPullOverEachFamily: a pull mirror checked over IPv4 and IPv6 has
// each file primed and verified over IPv4 (a GET and its follow-up
// HEAD), and a HEAD of its presence and size over IPv6 (Outcome.Beside):
// missing there, of another size there, right there. Pinned to one
// family, every request goes over it.
func TestPullOverEachFamily(t *testing.T) {
	tf := makeFiles(3)
	files := byURLPath(tf)
	d := newDualStack(t, func(w http.ResponseWriter, r *http.Request) {
		serveBytes(w, r, files[r.URL.Path].content)
	}, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case testDir + tf[0].Path:
			http.NotFound(w, r)
		case testDir + tf[1].Path:
			serveBytes(w, r, tf[1].content[1:])
		default:
			serveBytes(w, r, files[r.URL.Path].content)
		}
	})
	var col collector
	m := Mirror{ID: 1, Name: "dual", BaseURL: d.base, Mode: ModePull, Concurrency: 2, Families: []checks.Family{checks.IPv4, checks.IPv6}}
	if err := Prime(context.Background(), testConfig(d.client), m, filesOf(tf), col.emit); err != nil {
		t.Fatal(err)
	}
	got := col.files(t)
	for i, want := range []checks.Kind{checks.KindNotFound, checks.KindSizeMismatch, checks.KindOK} {
		o := got[tf[i].Path]
		if o.Family != checks.IPv4 || o.Result.Kind != checks.KindOK || !o.Result.Hashed || len(o.Beside) != 1 ||
			o.Beside[0].Family != checks.IPv6 || o.Beside[0].Method != MethodHead || o.Beside[0].Result.Kind != want || o.Beside[0].CheckedAt.IsZero() {
			t.Errorf("file %d: over %q %s (hashed %v), beside %+v; want verified over IPv4, %s over IPv6",
				i, o.Family, o.Result.Kind, o.Result.Hashed, o.Beside, want)
		}
	}
	if g4, h4, g6, h6 := d.count("v4", "GET"), d.count("v4", "HEAD"), d.count("v6", "GET"), d.count("v6", "HEAD"); g4 != 3 || h4 != 3 || g6 != 0 || h6 != 3 {
		t.Errorf("requests: IPv4 %d GET %d HEAD, IPv6 %d GET %d HEAD; want a GET and a HEAD per file over IPv4, a HEAD per file over IPv6",
			g4, h4, g6, h6)
	}

	// Pinned to IPv6 (IPv4 does not answer, say): every file there, no
	// check beside.
	var pinned collector
	m.Families = []checks.Family{checks.IPv6}
	if err := Prime(context.Background(), testConfig(d.client), m, filesOf(tf[2:]), pinned.emit); err != nil {
		t.Fatal(err)
	}
	if o := pinned.files(t)[tf[2].Path]; o.Family != checks.IPv6 || o.Result.Kind != checks.KindOK || len(o.Beside) != 0 {
		t.Errorf("pinned to IPv6: %+v", o)
	}
	if g4, g6 := d.count("v4", "GET"), d.count("v6", "GET"); g4 != 3 || g6 != 1 {
		t.Errorf("pinned to IPv6: %d GETs over IPv4 (want none more), %d over IPv6 (want 1)", g4-3, g6)
	}

	// A file whose bytes were found wrong before: hashed over IPv6 too.
	var hashed collector
	m.Families = []checks.Family{checks.IPv4, checks.IPv6}
	f := tf[2].File
	f.HashBeside = true
	if err := Prime(context.Background(), testConfig(d.client), m, []File{f}, hashed.emit); err != nil {
		t.Fatal(err)
	}
	if o := hashed.files(t)[f.Path]; len(o.Beside) != 1 || o.Beside[0].Method != MethodGet || o.Beside[0].Result.Kind != checks.KindOK ||
		!o.Beside[0].Result.Hashed || d.count("v6", "GET") != 2 {
		t.Errorf("hashed beside: %+v (%d GETs over IPv6, want 2)", o.Beside, d.count("v6", "GET"))
	}
}

// TestPassiveWaitsForEachFamily: the two servers of a passive dual-stack
// mirror sync at other times. A file verified over IPv4 that IPv6 does
// not serve yet is polled for over IPv6 alone — its verification kept,
// IPv4 not asked again — until IPv6 serves it; one IPv6 never serves
// ends, at the deadline, with IPv6's last answer beside the verification.
func TestPassiveWaitsForEachFamily(t *testing.T) {
	tf := makeFiles(1)
	f := tf[0]
	var mu sync.Mutex
	v6Heads := 0
	d := newDualStack(t, func(w http.ResponseWriter, r *http.Request) {
		serveBytes(w, r, f.content)
	}, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		v6Heads++
		synced := v6Heads > 3
		mu.Unlock()
		if !synced {
			http.NotFound(w, r)
			return
		}
		serveBytes(w, r, f.content)
	})
	m := Mirror{ID: 1, Name: "passive", BaseURL: d.base, Mode: ModePassive, Concurrency: 1, Families: []checks.Family{checks.IPv4, checks.IPv6}}
	var col collector
	if err := Prime(context.Background(), testConfig(d.client), m, filesOf(tf), col.emit); err != nil {
		t.Fatal(err)
	}
	o := col.files(t)[f.Path]
	if o.Result.Kind != checks.KindOK || o.Family != checks.IPv4 || len(o.Beside) != 1 || o.Beside[0].Result.Kind != checks.KindOK {
		t.Errorf("once IPv6 synced: %s over %q, beside %+v; want verified over IPv4 and present over IPv6", o.Result.Kind, o.Family, o.Beside)
	}
	if g4, h4, h6 := d.count("v4", "GET"), d.count("v4", "HEAD"), d.count("v6", "HEAD"); g4 != 1 || h4 != 1 || h6 != 4 {
		t.Errorf("requests: IPv4 %d GET %d HEAD, IPv6 %d HEAD; want one poll and one verification over IPv4, IPv6 polled until it served the file (4)",
			g4, h4, h6)
	}

	// IPv6 never syncs: at the deadline, its last answer.
	never := newDualStack(t, func(w http.ResponseWriter, r *http.Request) { serveBytes(w, r, f.content) }, http.NotFound)
	cfg := testConfig(never.client)
	cfg.Deadline = 50 * time.Millisecond
	m.BaseURL = never.base
	var late collector
	if err := Prime(context.Background(), cfg, m, filesOf(tf), late.emit); err != nil {
		t.Fatal(err)
	}
	o = late.files(t)[f.Path]
	if o.Result.Kind != checks.KindOK || len(o.Beside) != 1 || o.Beside[0].Result.Kind != checks.KindNotFound {
		t.Errorf("IPv6 never synced: %s, beside %+v; want verified over IPv4, not_found over IPv6", o.Result.Kind, o.Beside)
	}
	if g4 := never.count("v4", "GET"); g4 != 1 {
		t.Errorf("%d verifications over IPv4, want 1 (kept while IPv6 was polled)", g4)
	}
}

// TestTriggerOverAnyFamily: the trigger goes to its own URL over whichever
// family reaches it, even when the files are pinned to another.
func TestTriggerOverAnyFamily(t *testing.T) {
	tf := makeFiles(1)
	d := newDualStack(t, func(w http.ResponseWriter, r *http.Request) { serveBytes(w, r, tf[0].content) },
		func(w http.ResponseWriter, r *http.Request) { serveBytes(w, r, tf[0].content) })
	posts := 0
	var mu sync.Mutex
	trig := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posts++
		mu.Unlock()
	})
	cfg := testConfig(d.client)
	cfg.TriggerSecret = []byte("s")
	m := Mirror{ID: 1, Name: "trig", BaseURL: d.base, Mode: ModeTrigger, TriggerURL: trig.URL + "/sync", Concurrency: 1,
		Families: []checks.Family{checks.IPv6}}
	var col collector
	if err := Prime(context.Background(), cfg, m, filesOf(tf), col.emit); err != nil {
		t.Fatal(err)
	}
	var post Outcome
	for _, o := range col.all() {
		if o.Path == "" {
			post = o
		}
	}
	if post.Method != MethodPost || post.Result.Kind != checks.KindOK || post.Family != "" || posts != 1 {
		t.Errorf("the trigger (to an IPv4 address, files over IPv6): %s %s over %q, %d received", post.Method, post.Result.Kind, post.Family, posts)
	}
	if o := col.files(t)[tf[0].Path]; o.Result.Kind != checks.KindOK || o.Family != checks.IPv6 || d.count("v4", "GET") != 0 {
		t.Errorf("the file: %s over %q (%d GETs over IPv4)", o.Result.Kind, o.Family, d.count("v4", "GET"))
	}
}
