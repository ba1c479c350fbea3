package checks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testUA = "sentry/test (+https://example.org/contact)"

// bodyTracker sits under checkTransport and counts response bodies that were
// handed out but not closed: after a probe returns it must be zero, whatever
// happened (retries, redirects, failures). This is the structural guard
// against connection and goroutine leaks.
type bodyTracker struct {
	next http.RoundTripper
	open atomic.Int64
}

func (b *bodyTracker) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(r)
	if err == nil {
		b.open.Add(1)
		resp.Body = &trackedBody{ReadCloser: resp.Body, t: b}
	}
	return resp, err
}

type trackedBody struct {
	io.ReadCloser
	t    *bodyTracker
	once sync.Once
}

func (tb *trackedBody) Close() error {
	tb.once.Do(func() { tb.t.open.Add(-1) })
	return tb.ReadCloser.Close()
}

func (b *bodyTracker) assertClosed(t *testing.T) {
	t.Helper()
	if n := b.open.Load(); n != 0 {
		t.Errorf("%d response bodies left open", n)
	}
}

// testOptions are fast: tiny retry waits, short-ish timeouts. Cases shorten
// them further where the behaviour under test is a timeout.
func testOptions() ClientOptions {
	return ClientOptions{
		UserAgent:       testUA,
		ConnectTimeout:  5 * time.Second,
		HeaderTimeout:   5 * time.Second,
		BodyIdleTimeout: 5 * time.Second,
		RetryWaitMin:    time.Millisecond,
		RetryWaitMax:    2 * time.Millisecond,
	}
}

func newTestClient(t testing.TB, mod func(*ClientOptions)) (*Client, *bodyTracker) {
	t.Helper()
	o := testOptions()
	if mod != nil {
		mod(&o)
	}
	c, err := NewClient(o)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	tr := &bodyTracker{next: c.rt.next}
	c.rt.next = tr
	t.Cleanup(c.CloseIdleConnections)
	return c, tr
}

func TestNewClientValidation(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*ClientOptions)
		field string // "" = valid
	}{
		{"defaults", func(o *ClientOptions) {}, ""},
		{"no user agent", func(o *ClientOptions) { o.UserAgent = "" }, "UserAgent"},
		{"user agent with newline", func(o *ClientOptions) { o.UserAgent = "sentry\r\nX-Evil: 1" }, "UserAgent"},
		{"user agent too long", func(o *ClientOptions) { o.UserAgent = strings.Repeat("a", 300) }, "UserAgent"},
		{"negative connect timeout", func(o *ClientOptions) { o.ConnectTimeout = -time.Second }, "ConnectTimeout"},
		{"negative tls timeout", func(o *ClientOptions) { o.TLSHandshakeTimeout = -1 }, "TLSHandshakeTimeout"},
		{"negative header timeout", func(o *ClientOptions) { o.HeaderTimeout = -1 }, "HeaderTimeout"},
		{"negative body idle", func(o *ClientOptions) { o.BodyIdleTimeout = -1 }, "BodyIdleTimeout"},
		{"wait min over max", func(o *ClientOptions) { o.RetryWaitMin, o.RetryWaitMax = time.Minute, time.Second }, "RetryWaitMin"},
		{"wait min over default max", func(o *ClientOptions) { o.RetryWaitMin, o.RetryWaitMax = time.Minute, 0 }, "RetryWaitMin"},
		{"negative wait max", func(o *ClientOptions) { o.RetryWaitMax = -1 }, "RetryWaitMax"},
		{"retries too many", func(o *ClientOptions) { o.Retries = 11 }, "Retries"},
		{"retries -2", func(o *ClientOptions) { o.Retries = -2 }, "Retries"},
		{"no retries", func(o *ClientOptions) { o.Retries = NoRetries }, ""},
		{"redirects too many", func(o *ClientOptions) { o.MaxRedirects = 21 }, "MaxRedirects"},
		{"redirects -5", func(o *ClientOptions) { o.MaxRedirects = -5 }, "MaxRedirects"},
		{"no redirects", func(o *ClientOptions) { o.MaxRedirects = NoRedirects }, ""},
		{"header bytes negative", func(o *ClientOptions) { o.MaxHeaderBytes = -1 }, "MaxHeaderBytes"},
		{"header bytes huge", func(o *ClientOptions) { o.MaxHeaderBytes = 2 << 20 }, "MaxHeaderBytes"},
		{"idle conns negative", func(o *ClientOptions) { o.MaxIdleConnsPerHost = -1 }, "MaxIdleConnsPerHost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ClientOptions{UserAgent: testUA}
			tt.mod(&o)
			c, err := NewClient(o)
			if tt.field == "" {
				if err != nil || c == nil {
					t.Fatalf("NewClient: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewClient accepted invalid options")
			}
			if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q does not wrap ErrInvalidOptions or name %s", err, tt.field)
			}
		})
	}
}

func TestNewClientDefaults(t *testing.T) {
	c, err := NewClient(ClientOptions{UserAgent: testUA})
	if err != nil {
		t.Fatal(err)
	}
	o := c.Options()
	want := ClientOptions{
		UserAgent: testUA, ConnectTimeout: 10 * time.Second, TLSHandshakeTimeout: 10 * time.Second,
		HeaderTimeout: 30 * time.Second, BodyIdleTimeout: 30 * time.Second, MinRate: DefaultMinRate, Retries: 2,
		RetryWaitMin: 500 * time.Millisecond, RetryWaitMax: 10 * time.Second, MaxRedirects: 3,
		MaxHeaderBytes: 64 << 10, MaxIdleConnsPerHost: 8,
	}
	if fmt.Sprint(o) != fmt.Sprint(want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", o, want)
	}
	if c.rc.RetryMax != 2 {
		t.Errorf("RetryMax = %d, want 2", c.rc.RetryMax)
	}
	tr := c.tr
	if tr.Proxy != nil || !tr.DisableCompression || !tr.ForceAttemptHTTP2 ||
		tr.MaxResponseHeaderBytes != 64<<10 || tr.MaxIdleConnsPerHost != 8 ||
		tr.ResponseHeaderTimeout != 30*time.Second || tr.TLSHandshakeTimeout != 10*time.Second {
		t.Errorf("transport not configured as documented: %+v", tr)
	}
	if c.rc.ErrorHandler == nil || c.rc.Logger != nil {
		t.Errorf("retry client: ErrorHandler set = %v, Logger = %v (want passthrough, nil)", c.rc.ErrorHandler != nil, c.rc.Logger)
	}
	nr, _ := NewClient(ClientOptions{UserAgent: testUA, Retries: NoRetries})
	if nr.rc.RetryMax != 0 {
		t.Errorf("NoRetries: RetryMax = %d, want 0", nr.rc.RetryMax)
	}
}

// The retry library calls CloseIdleConnections on the http.Client whenever a
// request finally fails; the transport under it must not implement it, or one
// bad mirror would drop every mirror's pooled connections.
func TestTransportHidesCloseIdleConnections(t *testing.T) {
	c, err := NewClient(ClientOptions{UserAgent: testUA})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.hc.Transport.(interface{ CloseIdleConnections() }); ok {
		t.Fatal("the http.Client's transport implements CloseIdleConnections")
	}
}

func TestFailureKeepsOtherMirrorsConnections(t *testing.T) {
	var newConns atomic.Int32
	good := httptest.NewUnstartedServer(fileHandler(testContent, ""))
	good.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			newConns.Add(1)
		}
	}
	good.Start()
	t.Cleanup(good.Close)
	bad := serve(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	c, tr := newTestClient(t, nil)
	target := Target{URL: good.URL + "/file", Size: int64(len(testContent)), Algo: "sha256", Hash: testSHA256}

	for i, step := range []struct {
		url  string
		want Kind
	}{{target.URL, KindOK}, {bad.URL + "/file", KindHTTPStatus}, {target.URL, KindOK}} {
		tt := target
		tt.URL = step.url
		if res := Verify(t.Context(), c, tt); res.Kind != step.want {
			t.Fatalf("step %d: kind %s (%s), want %s", i, res.Kind, res.Detail, step.want)
		}
		tr.assertClosed(t)
	}
	if n := newConns.Load(); n != 1 {
		t.Fatalf("good mirror saw %d connections, want 1 (pooled connection dropped after another mirror failed)", n)
	}
}

func TestCappedBackoff(t *testing.T) {
	now := time.Now()
	minW, maxW := 10*time.Millisecond, 100*time.Millisecond
	resp := func(code int, ra string) *http.Response {
		h := http.Header{}
		if ra != "" {
			h.Set("Retry-After", ra)
		}
		return &http.Response{StatusCode: code, Header: h}
	}
	tests := []struct {
		name    string
		attempt int
		resp    *http.Response
		lo, hi  time.Duration
	}{
		{"first attempt", 0, nil, minW, minW},
		{"second attempt", 1, nil, minW, 2 * minW},
		{"late attempt capped", 20, nil, minW, maxW},
		{"huge attempt", 1000, nil, minW, maxW},
		{"retry-after capped", 0, resp(429, "3600"), maxW, maxW},
		{"retry-after on 503", 0, resp(503, "3600"), maxW, maxW},
		{"retry-after huge", 0, resp(429, "99999999999999999"), maxW, maxW},
		{"retry-after zero raised to min", 0, resp(429, "0"), minW, minW},
		{"retry-after date capped", 0, resp(429, now.Add(time.Hour).UTC().Format(http.TimeFormat)), maxW, maxW},
		{"retry-after garbage ignored", 0, resp(429, "soon"), minW, minW},
		{"retry-after negative ignored", 0, resp(429, "-5"), minW, minW},
	}
	// Large bounds must not overflow.
	for _, a := range []int{0, 1, 40, 70, 1 << 20} {
		if d := cappedBackoff(time.Hour, 24*time.Hour, a, nil); d < time.Hour || d > 24*time.Hour {
			t.Errorf("attempt %d with large bounds: %s", a, d)
		}
	}
	for _, tt := range tests {
		for range 50 { // jitter: every draw must be in range
			d := cappedBackoff(minW, maxW, tt.attempt, tt.resp)
			if d < tt.lo || d > tt.hi {
				t.Fatalf("%s: backoff %s not in [%s, %s]", tt.name, d, tt.lo, tt.hi)
			}
		}
	}
}

func TestCheckRetry(t *testing.T) {
	c, err := NewClient(ClientOptions{UserAgent: testUA})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	uerr := func(e error) error { return &url.Error{Op: "Get", URL: "https://m.example/f", Err: e} }
	tests := []struct {
		name  string
		ctx   context.Context
		code  int
		err   error
		retry bool
	}{
		{"200", nil, 200, nil, false},
		{"404", nil, 404, nil, false},
		{"403", nil, 403, nil, false},
		{"400", nil, 400, nil, false},
		{"429", nil, 429, nil, true},
		{"500", nil, 500, nil, true},
		{"501", nil, 501, nil, false},
		{"502", nil, 502, nil, true},
		{"503", nil, 503, nil, true},
		{"503 cancelled", cancelled, 503, nil, false},
		{"refused", nil, 0, uerr(&net.OpError{Op: "dial", Err: errors.New("connect: connection refused")}), true},
		{"timeout", nil, 0, uerr(context.DeadlineExceeded), true},
		{"dns not found", nil, 0, uerr(&net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}), false},
		{"dns temporary", nil, 0, uerr(&net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}), true},
		{"tls cert", nil, 0, uerr(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), false},
		{"tls alert", nil, 0, uerr(&net.OpError{Op: "remote error", Err: errors.New("tls: handshake failure")}), false},
		{"redirect refused", nil, 0, uerr(fmt.Errorf("%w: more than 3 redirects", ErrRedirect)), false},
		{"headers too large", nil, 0, uerr(errors.New("net/http: server response headers exceeded 65536 bytes; aborted")), false},
		{"cancelled", cancelled, 0, uerr(context.Canceled), false},
	}
	for _, tt := range tests {
		ctx := tt.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		var resp *http.Response
		if tt.err == nil {
			resp = &http.Response{StatusCode: tt.code, Header: http.Header{}}
		}
		retry, err := c.checkRetry(ctx, resp, tt.err)
		if retry != tt.retry || err != nil {
			t.Errorf("%s: checkRetry = %v, %v; want %v, nil", tt.name, retry, err, tt.retry)
		}
	}
}

// capture is a slog.Handler that records every record.
type capture struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *capture) Enabled(context.Context, slog.Level) bool { return true }
func (h *capture) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *capture) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *capture) WithGroup(string) slog.Handler      { return h }

func TestLibraryLogsAtDebugOnly(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	h := &capture{}
	c, _ := newTestClient(t, func(o *ClientOptions) { o.Logger = slog.New(h) })
	res := Head(t.Context(), c, Target{URL: srv.URL + "/f", Size: 1})
	if res.Kind != KindHTTPStatus || res.Attempts != 3 {
		t.Fatalf("got %s after %d attempts", res.Kind, res.Attempts)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var retries int
	for _, r := range h.records {
		if r.Level != slog.LevelDebug {
			t.Errorf("record %q at level %s, want debug", r.Message, r.Level)
		}
		if strings.Contains(r.Message, "retrying") {
			retries++
		}
	}
	if retries != 2 {
		t.Errorf("saw %d retry log records, want 2", retries)
	}
}

// DialContext replaces the dialer (a vantage's source address, or tests):
// the host name is never resolved by sentry itself, and ConnectTimeout still
// bounds the dial.
func TestDialContextOverride(t *testing.T) {
	srv := serve(t, fileHandler(testContent, ""))
	addr := srv.Listener.Addr().String()
	var dialed atomic.Int32
	c, tr := newTestClient(t, func(o *ClientOptions) {
		o.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
			dialed.Add(1)
			if a != "mirror.test:80" {
				return nil, fmt.Errorf("unexpected address %s", a)
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
	})
	tg := Target{URL: "http://mirror.test/pub/f", Size: int64(len(testContent)), Algo: "sha256", Hash: testSHA256}
	res := Verify(t.Context(), c, tg)
	if res.Kind != KindOK || res.FinalURL != "http://mirror.test/pub/f" || dialed.Load() != 1 {
		t.Fatalf("got %s (%s), final %q, %d dials", res.Kind, res.Detail, res.FinalURL, dialed.Load())
	}
	tr.assertClosed(t)

	// A dial that never completes is cut by ConnectTimeout.
	stuck, tr2 := newTestClient(t, func(o *ClientOptions) {
		o.ConnectTimeout = 20 * time.Millisecond
		o.Retries = NoRetries
		o.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}
	})
	res = Head(t.Context(), stuck, tg)
	if res.Kind != KindTimeout || res.Attempts != 1 {
		t.Fatalf("stuck dial: got %s after %d attempts (%s)", res.Kind, res.Attempts, res.Detail)
	}
	tr2.assertClosed(t)
}

// SourceAddress binds every connection the client makes — plain, TLS and
// HTTP/2, to the first host and to the host a redirect leads to — to that
// local address; without it the system chooses (127.0.0.1 towards a server
// on 127.0.0.1). Linux loopback accepts any 127/8 address as a source.
func TestSourceAddress(t *testing.T) {
	tests := []struct {
		name   string
		source string
		serve  func(testing.TB, http.HandlerFunc) *httptest.Server
		https  bool
		want   string // the host part of every r.RemoteAddr the servers saw
	}{
		{"plain, system chooses", "", serve, false, "127.0.0.1"},
		{"plain", "127.0.0.2", serve, false, "127.0.0.2"},
		{"tls, system chooses", "", serveTLS, true, "127.0.0.1"},
		{"tls", "127.0.0.2", serveTLS, true, "127.0.0.2"},
		{"http2", "127.0.0.2", serveH2, true, "127.0.0.2"},
		{"ipv4-mapped form", "::ffff:127.0.0.3", serve, false, "127.0.0.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var seen []string
			record := func(h http.HandlerFunc) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					host, _, err := net.SplitHostPort(r.RemoteAddr)
					if err != nil {
						host = r.RemoteAddr
					}
					mu.Lock()
					seen = append(seen, host)
					mu.Unlock()
					h(w, r)
				}
			}
			// Two servers, two hosts (ports): each gets its own pooled
			// transport inside the client.
			to := tt.serve(t, record(fileHandler(testContent, "")))
			from := tt.serve(t, record(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, to.URL+r.URL.Path, http.StatusFound)
			}))
			c, tr := newTestClient(t, func(o *ClientOptions) {
				o.SourceAddress = tt.source
				if tt.https {
					o.RootCAs = from.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
				}
			})
			tg := Target{URL: from.URL + "/pub/f", Size: int64(len(testContent)), Algo: "sha256", Hash: testSHA256}
			res := Verify(t.Context(), c, tg)
			if res.Kind != KindOK || res.FinalURL != to.URL+"/pub/f" {
				t.Fatalf("got %s (%s), final %q", res.Kind, res.Detail, res.FinalURL)
			}
			tr.assertClosed(t)
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 2 {
				t.Fatalf("servers saw %d requests (%v), want 2", len(seen), seen)
			}
			for _, host := range seen {
				if host != tt.want {
					t.Errorf("a server saw a connection from %s, want %s (all: %v)", host, tt.want, seen)
				}
			}
		})
	}
}

// A SourceAddress that cannot be a source is refused by NewClient, naming the
// field: otherwise every connection would fail and sentry would take its own
// misconfiguration for every mirror being down.
func TestSourceAddressValidation(t *testing.T) {
	nonlocal, _ := os.ReadFile("/proc/sys/net/ipv4/ip_nonlocal_bind")
	tests := []struct {
		name   string
		source string
		dial   bool
		want   string // "" = valid; else in the error
		canon  string // Options().SourceAddress when valid
	}{
		{"loopback", "127.0.0.2", false, "", "127.0.0.2"},
		{"ipv4-mapped", "::ffff:127.0.0.2", false, "", "127.0.0.2"},
		{"unspecified", "0.0.0.0", false, "", "0.0.0.0"},
		{"not an ip", "not-an-ip", false, `"not-an-ip" is not an IP address`, ""},
		{"with a port", "127.0.0.2:80", false, "is not an IP address", ""},
		{"host name", "localhost", false, "is not an IP address", ""},
		{"multicast", "224.0.0.1", false, "multicast", ""},
		{"not of this host", "198.51.100.77", false, "is not an address of this host", ""},
		{"with DialContext", "127.0.0.2", true, "DialContext", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "not of this host" && strings.TrimSpace(string(nonlocal)) == "1" {
				t.Skip("net.ipv4.ip_nonlocal_bind is on: any address can be bound")
			}
			o := ClientOptions{UserAgent: testUA, SourceAddress: tt.source}
			if tt.dial {
				o.DialContext = (&net.Dialer{}).DialContext
			}
			c, err := NewClient(o)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("NewClient: %v", err)
				}
				if got := c.Options().SourceAddress; got != tt.canon {
					t.Errorf("Options().SourceAddress = %q, want %q", got, tt.canon)
				}
				return
			}
			if err == nil {
				t.Fatal("NewClient accepted the source address")
			}
			if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "SourceAddress") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not wrap ErrInvalidOptions, name SourceAddress and say %q", err, tt.want)
			}
		})
	}
}
