package checks

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestClassOf(t *testing.T) {
	tests := []struct {
		addr string
		want addrClass
	}{
		{"127.0.0.1", classLoopback},
		{"127.3.2.1", classLoopback},
		{"::1", classLoopback},
		{"::ffff:127.0.0.1", classLoopback},
		{"169.254.169.254", classLinkLocal},
		{"fe80::1", classLinkLocal},
		{"64:ff9b::a9fe:a9fe", classLinkLocal}, // 169.254.169.254 through NAT64
		{"0.0.0.0", classUnspecified},
		{"0.1.2.3", classUnspecified},
		{"::", classUnspecified},
		{"10.1.2.3", classPrivate},
		{"172.16.0.1", classPrivate},
		{"192.168.1.1", classPrivate},
		{"fd00::1", classPrivate},
		{"fec0::1", classPrivate},
		{"100.64.0.1", classShared},
		{"239.1.2.3", classMulticast},
		{"ff05::1", classMulticast},
		{"8.8.8.8", classPublic},
		{"2001:4860:4860::8888", classPublic},
		{"172.32.0.1", classPublic},
	}
	for _, tt := range tests {
		if got := classOf(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("classOf(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
}

func TestHopAllowed(t *testing.T) {
	tests := []struct {
		name  string
		base  []addrClass
		allow []addrClass
		deny  []addrClass
	}{
		{"public mirror", []addrClass{classPublic}, []addrClass{classPublic},
			[]addrClass{classLoopback, classLinkLocal, classUnspecified, classPrivate, classShared, classMulticast}},
		{"base does not resolve", nil, []addrClass{classPublic}, []addrClass{classLoopback, classPrivate}},
		{"mirror on loopback", []addrClass{classLoopback}, []addrClass{classPublic, classLoopback},
			[]addrClass{classLinkLocal, classPrivate, classUnspecified}},
		{"mirror on a private network", []addrClass{classPrivate}, []addrClass{classPublic, classPrivate},
			[]addrClass{classLoopback, classLinkLocal}},
		{"dual-stack name", []addrClass{classPublic, classPrivate}, []addrClass{classPublic, classPrivate},
			[]addrClass{classLoopback}},
	}
	for _, tt := range tests {
		s := hopAllowed(tt.base)
		for _, k := range tt.allow {
			if !s.has(k) {
				t.Errorf("%s: a hop to a %s address is refused", tt.name, k)
			}
		}
		for _, k := range tt.deny {
			if s.has(k) {
				t.Errorf("%s: a hop to a %s address is allowed", tt.name, k)
			}
		}
	}
}

// listenOn listens on addr (host:port, port 0 for any).
func listenOn(t *testing.T, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// internalService is a service on sentry's own network: it counts what
// reaches it.
type internalService struct {
	*httptest.Server
	hits atomic.Int64
}

func newInternal(t *testing.T, addr string) *internalService {
	s := &internalService{}
	s.Server = listenOn(t, addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		fmt.Fprint(w, `{"status": "internal, secret"}`)
	}))
	return s
}

// TestRedirectPolicy: a mirror on the Internet (mirror.test, which the
// client's resolver places on 127.0.0.2, an address the test declares
// public) redirecting its file into sentry's own network is refused, a
// redirect failure saying why, and nothing there is asked; a mirror on
// loopback may redirect to loopback, but not to link-local.
func TestRedirectPolicy(t *testing.T) {
	body := []byte("the file's bytes")
	sum := sha256.Sum256(body)
	internal := newInternal(t, "127.0.0.1:0")
	_, internalPort, _ := net.SplitHostPort(internal.Listener.Addr().String())
	good := serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	_, goodPort, _ := net.SplitHostPort(good.Listener.Addr().String())
	goodPublic := listenOn(t, "127.0.0.2:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))

	var to atomic.Value // where the mirror redirects
	redirector := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, to.Load().(string), http.StatusFound)
	})
	public := listenOn(t, "127.0.0.2:0", redirector) // mirror.test
	_, publicPort, _ := net.SplitHostPort(public.Listener.Addr().String())
	local := serve(t, redirector) // a mirror on loopback

	resolve := map[string][]netip.Addr{
		"mirror.test":   {netip.MustParseAddr("127.0.0.2")},
		"internal.test": {netip.MustParseAddr("127.0.0.1")},
		"metadata.test": {netip.MustParseAddr("169.254.169.254")},
		"mixed.test":    {netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("127.0.0.1")},
	}
	c, tr := newTestClient(t, func(o *ClientOptions) {
		o.Resolver = func(_ context.Context, host string) ([]netip.Addr, error) {
			if a, ok := resolve[host]; ok {
				return a, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		o.PublicPrefixes = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	})
	mirror := "http://mirror.test:" + publicPort
	tests := []struct {
		name, base, to string
		want           Kind
		why            string // in the detail
	}{
		{"to 127.0.0.1", mirror, "http://127.0.0.1:" + internalPort + "/api/mirrors", KindRedirect, "127.0.0.1 is a loopback address"},
		{"to ::1", mirror, "http://[::1]:" + internalPort + "/api/mirrors", KindRedirect, "::1 is a loopback address"},
		{"to the metadata service", mirror, "http://169.254.169.254/latest/meta-data/", KindRedirect, "169.254.169.254 is a link-local address"},
		{"to a private address", mirror, "http://10.1.2.3:" + internalPort + "/admin", KindRedirect, "10.1.2.3 is a private address"},
		{"to 0.0.0.0", mirror, "http://0.0.0.0:" + internalPort + "/", KindRedirect, "0.0.0.0 is an unspecified address"},
		{"to a name resolving to loopback", mirror, "http://internal.test:" + internalPort + "/api/", KindRedirect,
			"internal.test resolves to 127.0.0.1, a loopback address"},
		{"to a name resolving to link-local", mirror, "http://metadata.test/latest/", KindRedirect, "a link-local address"},
		{"to a name resolving to private and loopback", mirror, "http://mixed.test:" + internalPort + "/", KindRedirect, "a private address"},
		{"to a public address", mirror, goodPublic.URL + "/f", KindOK, ""},
		{"loopback mirror to loopback", local.URL, "http://127.0.0.1:" + goodPort + "/f", KindOK, ""},
		{"loopback mirror to link-local", local.URL, "http://169.254.169.254/latest/meta-data/", KindRedirect, "169.254.169.254 is a link-local address"},
		{"loopback mirror to a private address", local.URL, "http://10.1.2.3/", KindRedirect, "10.1.2.3 is a private address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to.Store(tt.to)
			before := internal.hits.Load()
			res := Verify(context.Background(), c, Target{URL: tt.base + "/f", Size: int64(len(body)), Algo: "sha256", Hash: hexSum(sum)})
			if res.Kind != tt.want || !strings.Contains(res.Detail, tt.why) {
				t.Errorf("kind %s (%s), want %s with %q", res.Kind, res.Detail, tt.want, tt.why)
			}
			if tt.want == KindRedirect {
				if !errors.Is(res.Err, ErrRedirect) {
					t.Errorf("err %v does not wrap ErrRedirect", res.Err)
				}
				if res.Attempts != 1 {
					t.Errorf("%d attempts: a refused redirect is not retried", res.Attempts)
				}
				if !strings.Contains(res.Detail, "redirect to http://") {
					t.Errorf("detail %q does not name the redirect's target", res.Detail)
				}
			}
			if n := internal.hits.Load() - before; n != 0 {
				t.Errorf("the internal service was asked %d times", n)
			}
			tr.assertClosed(t)
		})
	}
}

// TestRedirectPolicyHoldsThroughDNSRebinding: a name that resolves to a
// public address once and to 127.0.0.1 afterwards (DNS rebinding) never
// gets a hop to 127.0.0.1, however often it is asked, and a connection
// made while it was public is never reused for a hop that should not
// have it, nor a connection to loopback for a hop from a public mirror.
func TestRedirectPolicyHoldsThroughDNSRebinding(t *testing.T) {
	body := []byte("the file's bytes")
	sum := sha256.Sum256(body)
	// The same port on 127.0.0.2 (the name's public face) and 127.0.0.1
	// (what it rebinds to).
	var internal *internalService
	var face *httptest.Server
	for i := 0; internal == nil && i < 50; i++ {
		face = listenOn(t, "127.0.0.2:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
		_, port, _ := net.SplitHostPort(face.Listener.Addr().String())
		if ln, err := net.Listen("tcp", "127.0.0.1:"+port); err == nil {
			ln.Close()
			internal = newInternal(t, "127.0.0.1:"+port)
		}
	}
	if internal == nil {
		t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	}
	_, port, _ := net.SplitHostPort(face.Listener.Addr().String())
	mirror := listenOn(t, "127.0.0.3:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://rebind.test:"+port+"/f", http.StatusFound)
	}))
	_, mirrorPort, _ := net.SplitHostPort(mirror.Listener.Addr().String())
	var mu sync.Mutex
	asked := 0
	c, tr := newTestClient(t, func(o *ClientOptions) {
		o.Resolver = func(_ context.Context, host string) ([]netip.Addr, error) {
			switch host {
			case "mirror.test":
				return []netip.Addr{netip.MustParseAddr("127.0.0.3")}, nil
			case "rebind.test":
				mu.Lock()
				defer mu.Unlock()
				asked++
				if asked == 1 {
					return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil
				}
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		o.PublicPrefixes = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("127.0.0.3/32")}
		o.MaxIdleConnsPerHost = 1
	})
	tg := Target{URL: "http://mirror.test:" + mirrorPort + "/f", Size: int64(len(body)), Algo: "sha256", Hash: hexSum(sum)}
	// First: public, verified. Then the name says 127.0.0.1, and new
	// connections are refused; the pooled one, made to 127.0.0.2, may
	// serve (it goes where the policy allowed).
	kinds := map[Kind]int{}
	for range 6 {
		c.CloseIdleConnections() // every hop dials, and so resolves, again
		res := Verify(context.Background(), c, tg)
		kinds[res.Kind]++
		if res.Kind != KindOK && (res.Kind != KindRedirect || !strings.Contains(res.Detail, "rebind.test resolves to 127.0.0.1, a loopback address")) {
			t.Errorf("kind %s (%s)", res.Kind, res.Detail)
		}
	}
	if kinds[KindOK] != 1 || kinds[KindRedirect] != 5 {
		t.Errorf("kinds %v, want 1 ok (while public) and 5 redirect", kinds)
	}
	if n := internal.hits.Load(); n != 0 {
		t.Errorf("the internal service was asked %d times", n)
	}
	tr.assertClosed(t)
}

// TestPostFollowsNoRedirectToAnotherHost: a trigger answering 307 to
// another host is a redirect failure, and the other host gets nothing
// (not the body, not the signature); a 307 to another path of the same
// origin is followed, without the caller's headers.
func TestPostFollowsNoRedirectToAnotherHost(t *testing.T) {
	var gotSig atomic.Int64
	other := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Sentry-Signature") != "" {
			gotSig.Add(1)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	var sameSig, sameHits atomic.Int64
	var trigger *httptest.Server
	trigger = serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/trigger", http.StatusTemporaryRedirect)
		case "/moved":
			http.Redirect(w, r, "/trigger", http.StatusTemporaryRedirect)
		case "/trigger":
			sameHits.Add(1)
			if r.Header.Get("X-Sentry-Signature") != "" {
				sameSig.Add(1)
			}
			w.WriteHeader(http.StatusNoContent)
		}
	})
	c, tr := newTestClient(t, nil)
	hdr := http.Header{"X-Sentry-Signature": {"sha256=abc"}}
	res := Post(context.Background(), c, trigger.URL+"/away", []byte(`{"release":"1.5"}`), hdr)
	if res.Kind != KindRedirect || !strings.Contains(res.Detail, "another host") {
		t.Errorf("307 to another host: kind %s (%s), want redirect", res.Kind, res.Detail)
	}
	if gotSig.Load() != 0 {
		t.Errorf("the other host got the signature")
	}
	res = Post(context.Background(), c, trigger.URL+"/moved", []byte(`{"release":"1.5"}`), hdr)
	if res.Kind != KindOK || sameHits.Load() != 1 {
		t.Errorf("307 to the same origin: kind %s (%s), %d requests there; want ok, 1", res.Kind, res.Detail, sameHits.Load())
	}
	if sameSig.Load() != 0 {
		t.Errorf("the signature went to another URL than the one configured")
	}
	if hdr.Get("X-Sentry-Signature") != "sha256=abc" {
		t.Errorf("the caller's header was changed")
	}
	tr.assertClosed(t)
}
