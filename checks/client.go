package checks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	retryablehttp "github.com/hashicorp/go-retryablehttp"

	"github.com/mirrorsentry/sentry/checks/safetext"
)

// Defaults applied by NewClient to zero-valued ClientOptions fields.
const (
	DefaultConnectTimeout      = 10 * time.Second
	DefaultTLSHandshakeTimeout = 10 * time.Second
	DefaultHeaderTimeout       = 30 * time.Second
	DefaultBodyIdleTimeout     = 30 * time.Second
	DefaultRetries             = 2
	DefaultRetryWaitMin        = 500 * time.Millisecond
	DefaultRetryWaitMax        = 10 * time.Second
	DefaultMaxRedirects        = 3
	DefaultMaxHeaderBytes      = 64 << 10
	DefaultMaxIdleConnsPerHost = 8
)

// Upper bounds enforced by NewClient, so that a configuration typo cannot make
// sentry impolite (endless retries) or unbounded (huge headers).
const (
	MaxRetries          = 10
	MaxMaxRedirects     = 20
	MaxMaxHeaderBytes   = 1 << 20
	MaxUserAgentLength  = 256
	maxIdleConnsPerHost = 1024
)

// MinBodyProgress is the fewest body bytes that must arrive within
// BodyIdleTimeout for a body to count as moving, whatever MinRate says:
// a mirror dripping a byte now and then is as stuck as one sending
// nothing.
const MinBodyProgress = 1 << 10

// NoRetries and NoRedirects are the values of ClientOptions.Retries and
// ClientOptions.MaxRedirects that disable retries and redirects (zero means
// "the default").
const (
	NoRetries   = -1
	NoRedirects = -1
)

// Sentinel errors. Probers wrap them into Result.Err; callers branch on
// Result.Kind, these are for logs and errors.Is in tests.
var (
	// ErrInvalidOptions is wrapped by every NewClient validation error.
	ErrInvalidOptions = errors.New("invalid client options")
	// ErrRedirect is wrapped by a refused redirect (too many, https→http
	// downgrade, non-HTTP scheme, an address the redirect policy keeps
	// checks away from: a *RedirectRefusedError, redirectpolicy.go).
	ErrRedirect = errors.New("redirect refused")
	// ErrBodyIdle is wrapped by a body read that delivered, in one
	// BodyIdleTimeout, fewer bytes than MinRate asks for (a
	// *SlowBodyError says how many).
	ErrBodyIdle = errors.New("response body idle or too slow")
)

// ClientOptions configures a Client. Every zero-valued field takes the
// documented default; NewClient validates the rest and names the offending
// field in its error.
type ClientOptions struct {
	// UserAgent is sent with every request, including redirect hops and
	// retries. Required; sentry passes "sentry/<version> (+<contact>)" so
	// mirror admins can reach the operator. At most 256 bytes, printable
	// ASCII only.
	UserAgent string

	// ConnectTimeout bounds one TCP connect, including the DNS lookup.
	// Default 10s.
	ConnectTimeout time.Duration
	// TLSHandshakeTimeout bounds one TLS handshake. Default 10s.
	TLSHandshakeTimeout time.Duration
	// HeaderTimeout bounds the wait for response headers once the request
	// has been written (http.Transport.ResponseHeaderTimeout). Default 30s.
	HeaderTimeout time.Duration
	// BodyIdleTimeout is the window of the minimum rate: a response body
	// must deliver MinRate × BodyIdleTimeout bytes (at least
	// MinBodyProgress) within this long, and again within this long of
	// having done so, or it fails (ErrBodyIdle, a *SlowBodyError). The
	// rate is measured window by window, never from the start, so a fast
	// start cannot buy a drip afterwards; a body of size bytes thus
	// takes at most size / MinRate + BodyIdleTimeout (MaxBodyTime).
	// Default 30s.
	BodyIdleTimeout time.Duration
	// MinRate is the minimum rate of a response body, in bytes a second,
	// over every BodyIdleTimeout window. Default 32 KiB/s
	// (DefaultMinRate); at most MaxMinRate.
	MinRate int64

	// Retries is how many times a transient failure (connection error,
	// timeout, temporary DNS failure, 5xx, 429) is retried within one
	// check. 0 means the default, 2 (at most 3 attempts); NoRetries (-1)
	// means a single attempt. At most 10.
	Retries int
	// RetryWaitMin and RetryWaitMax bound the wait between attempts:
	// exponential backoff with jitter between them. A mirror's Retry-After
	// is honoured but capped at RetryWaitMax (the library does not cap it).
	// Defaults 500ms and 10s; RetryWaitMin must not exceed RetryWaitMax.
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration

	// MaxRedirects is how many redirects one request follows. 0 means the
	// default, 3; NoRedirects (-1) refuses every redirect. At most 20.
	MaxRedirects int
	// MaxHeaderBytes bounds the response headers
	// (http.Transport.MaxResponseHeaderBytes). Default 64 KiB, at most
	// 1 MiB.
	MaxHeaderBytes int
	// MaxIdleConnsPerHost is how many idle (keep-alive) connections are kept
	// per mirror host. Default 8.
	MaxIdleConnsPerHost int

	// RootCAs verifies mirror certificates. nil means the system pool;
	// tests pass the httptest server's pool.
	RootCAs *x509.CertPool
	// Logger receives debug-level logs (including the retry library's). nil
	// discards them.
	Logger *slog.Logger
	// DialContext, when set, replaces the TCP dialer (tests, or a
	// vantage's own network path). ConnectTimeout still applies through
	// the context it receives.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// SourceAddress, when set, is the local IP address (IPv4 or IPv6, no
	// port) every connection is made from — plain, TLS and HTTP/2, to
	// every host, redirect targets included: the interface mirrors see on
	// a multi-homed host, and what tells several sentry instances on one
	// host apart in a mirror's firewall. It must be an address of this
	// host (NewClient checks that it can bind it). An IPv4 source reaches
	// only a host's IPv4 addresses, an IPv6 source only its IPv6 ones.
	// Empty means the system chooses. Not with DialContext: a custom
	// dialer binds its own address.
	SourceAddress string

	// Resolver, when set, resolves mirror host names (A and AAAA) instead
	// of the system's resolver, for Families and for every connection,
	// whose addresses are then dialled in turn (tests: a dual-stack name
	// without /etc/hosts). nil: the system resolves.
	Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

	// PublicPrefixes are addresses the redirect policy counts as public,
	// whatever their range (redirectpolicy.go). Tests give a loopback
	// address the part of a mirror on the Internet with it; nil in
	// production.
	PublicPrefixes []netip.Prefix
}

// Client performs checks. It wraps a go-retryablehttp client over one shared,
// pooled http.Transport (connections are reused per mirror host). A Client is
// safe for concurrent use; create one per process (or per vantage) and call
// CloseIdleConnections at shutdown.
type Client struct {
	opts  ClientOptions // with defaults applied
	log   *slog.Logger
	tr    *http.Transport // the settings every host's transport is cloned from
	hosts *hostPool
	// uaValue is the User-Agent header's value, shared by every request.
	uaValue []string
	rt      *checkTransport
	hc      *http.Client
	rc      *retryablehttp.Client
}

// NewClient validates o, applies the defaults and builds a Client.
//
// The retry library's pitfalls are handled here: only transient failures are
// retried (never TLS certificate errors, redirect refusals, oversized headers,
// 4xx other than 429, nor a cancelled context); Retry-After is capped at
// RetryWaitMax; the last response or error is passed through instead of a
// generic "giving up" error; the library logs at debug level onto o.Logger
// instead of stderr; and its CloseIdleConnections on final failure is a no-op,
// so one failing mirror does not drop every other mirror's pooled connections.
func NewClient(o ClientOptions) (*Client, error) {
	if err := o.applyDefaults(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	tr := &http.Transport{
		Proxy:                  nil, // mirrors are checked directly, never through a proxy
		TLSClientConfig:        &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    o.TLSHandshakeTimeout,
		ResponseHeaderTimeout:  o.HeaderTimeout,
		DisableCompression:     true, // the bytes must be the file's
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: int64(o.MaxHeaderBytes),
		MaxIdleConns:           0, // no global cap: hundreds of mirrors
		MaxIdleConnsPerHost:    o.MaxIdleConnsPerHost,
		IdleConnTimeout:        90 * time.Second,
		ExpectContinueTimeout:  time.Second,
	}
	c := &Client{opts: o, log: log, tr: tr, hosts: &hostPool{template: tr, m: map[hostKey]*http.Transport{}}, uaValue: []string{o.UserAgent}}
	if o.DialContext != nil {
		dial, timeout := o.DialContext, o.ConnectTimeout
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return dial(ctx, network, addr)
		}
	} else {
		d := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
		if o.SourceAddress != "" {
			// Validated by applyDefaults. The template's DialContext is
			// what every per-host clone dials with, for plain and TLS
			// connections alike (the transport has no DialTLSContext).
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(o.SourceAddress), 0))
		}
		tr.DialContext = d.DialContext
	}
	tr.DialContext = c.policyDial(c.familyDial(tr.DialContext))
	c.rt = &checkTransport{c: c, next: c.hosts, userAgent: o.UserAgent, idle: o.BodyIdleTimeout, minRate: o.MinRate,
		need: windowBytes(o.MinRate, o.BodyIdleTimeout)}
	c.hc = &http.Client{Transport: c.rt, CheckRedirect: c.checkRedirect}

	rc := &retryablehttp.Client{
		HTTPClient:     c.hc,
		RetryWaitMin:   o.RetryWaitMin,
		RetryWaitMax:   o.RetryWaitMax,
		RetryMax:       max(o.Retries, 0),
		CheckRetry:     c.checkRetry,
		Backoff:        cappedBackoff,
		ErrorHandler:   retryablehttp.PassthroughErrorHandler,
		RequestLogHook: countAttempt,
	}
	if o.Logger != nil && o.Logger.Enabled(context.Background(), slog.LevelDebug) {
		rc.Logger = leveledLogger{o.Logger}
	} else {
		// A nil interface: the library logs nothing (it would only say, at
		// debug level, what sentry logs itself; building its words costs
		// every request).
		rc.Logger = nil
	}
	c.rc = rc
	return c, nil
}

func (o *ClientOptions) applyDefaults() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("checks: %w: %s %s", ErrInvalidOptions, field, fmt.Sprintf(format, args...))
	}
	switch {
	case o.UserAgent == "":
		return bad("UserAgent", "is required")
	case len(o.UserAgent) > MaxUserAgentLength:
		return bad("UserAgent", "is longer than %d bytes", MaxUserAgentLength)
	case strings.IndexFunc(o.UserAgent, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0:
		return bad("UserAgent", "must be printable ASCII")
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ConnectTimeout", &o.ConnectTimeout, DefaultConnectTimeout},
		{"TLSHandshakeTimeout", &o.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout},
		{"HeaderTimeout", &o.HeaderTimeout, DefaultHeaderTimeout},
		{"BodyIdleTimeout", &o.BodyIdleTimeout, DefaultBodyIdleTimeout},
		{"RetryWaitMin", &o.RetryWaitMin, DefaultRetryWaitMin},
		{"RetryWaitMax", &o.RetryWaitMax, DefaultRetryWaitMax},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return bad(d.name, "must not be negative, got %s", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	switch {
	case o.MinRate == 0:
		o.MinRate = DefaultMinRate
	case o.MinRate < 0 || o.MinRate > MaxMinRate:
		return bad("MinRate", "must be between 1 and %d bytes a second, got %d", MaxMinRate, o.MinRate)
	}
	if o.RetryWaitMin > o.RetryWaitMax {
		return bad("RetryWaitMin", "(%s) must not exceed RetryWaitMax (%s)", o.RetryWaitMin, o.RetryWaitMax)
	}
	switch {
	case o.Retries == 0:
		o.Retries = DefaultRetries
	case o.Retries < 0 && o.Retries != NoRetries:
		return bad("Retries", "must be between 0 and %d or NoRetries (-1), got %d", MaxRetries, o.Retries)
	case o.Retries > MaxRetries:
		return bad("Retries", "must be at most %d, got %d", MaxRetries, o.Retries)
	}
	switch {
	case o.MaxRedirects == 0:
		o.MaxRedirects = DefaultMaxRedirects
	case o.MaxRedirects < 0 && o.MaxRedirects != NoRedirects:
		return bad("MaxRedirects", "must be between 0 and %d or NoRedirects (-1), got %d", MaxMaxRedirects, o.MaxRedirects)
	case o.MaxRedirects > MaxMaxRedirects:
		return bad("MaxRedirects", "must be at most %d, got %d", MaxMaxRedirects, o.MaxRedirects)
	}
	switch {
	case o.MaxHeaderBytes == 0:
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	case o.MaxHeaderBytes < 0 || o.MaxHeaderBytes > MaxMaxHeaderBytes:
		return bad("MaxHeaderBytes", "must be between 1 and %d, got %d", MaxMaxHeaderBytes, o.MaxHeaderBytes)
	}
	switch {
	case o.MaxIdleConnsPerHost == 0:
		o.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	case o.MaxIdleConnsPerHost < 0 || o.MaxIdleConnsPerHost > maxIdleConnsPerHost:
		return bad("MaxIdleConnsPerHost", "must be between 1 and %d, got %d", maxIdleConnsPerHost, o.MaxIdleConnsPerHost)
	}
	if o.SourceAddress != "" {
		a, err := netip.ParseAddr(o.SourceAddress)
		switch {
		case err != nil:
			return bad("SourceAddress", "%q is not an IP address", clip(o.SourceAddress, 64))
		case o.DialContext != nil:
			return bad("SourceAddress", "cannot be combined with DialContext (bind the address in DialContext)")
		case a.IsMulticast():
			return bad("SourceAddress", "%s is a multicast address", a)
		}
		a = a.Unmap()
		if err := canBind(a); err != nil {
			return bad("SourceAddress", "%s is not an address of this host (%v)", a, err)
		}
		o.SourceAddress = a.String()
	}
	return nil
}

// canBind reports whether a local socket can be bound to a: a source address
// that is not one of this host's would otherwise fail every connection, and
// sentry would take its own misconfiguration for every mirror being down.
func canBind(a netip.Addr) error {
	pc, err := net.ListenPacket("udp", netip.AddrPortFrom(a, 0).String())
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			return oe.Err
		}
		return err
	}
	return pc.Close()
}

// Options returns the options in effect, defaults applied.
func (c *Client) Options() ClientOptions { return c.opts }

// CloseIdleConnections closes the pooled keep-alive connections to every
// mirror. Call it at shutdown. (The retry library's own calls to
// CloseIdleConnections, made whenever one request finally fails, are
// deliberately no-ops.)
func (c *Client) CloseIdleConnections() { c.hosts.CloseIdleConnections() }

// Forget closes the idle keep-alive connections to the host of baseURL
// (a mirror sentry is done with for now), so that a run over hundreds of
// mirrors does not keep every mirror's connections open until the idle
// timeout. Requests in flight to that host are not affected; a later
// request opens new connections.
func (c *Client) Forget(baseURL string) {
	u, err := checkURL(baseURL) // the host as requests have it
	if err != nil {
		return
	}
	c.hosts.forget(u.Scheme, u.Host)
}

// hostPool is the transport under checkTransport: one http.Transport per
// host (scheme and host:port), all cloned from one template, so that the
// connections of one mirror can be closed when sentry is done with it
// (http.Transport can only close all its idle connections at once).
type hostPool struct {
	template *http.Transport
	mu       sync.Mutex
	m        map[hostKey]*http.Transport
}

// hostKey names one of hostPool's transports: a scheme and host, the
// address family a connection is pinned to ("" for any): a connection
// over one family is never reused for another; and, for a redirect hop,
// what the redirect policy let its connections reach (0 for a check's
// first request): a hop never reuses a connection it could not have
// made.
type hostKey struct {
	scheme, host string
	family       Family
	hop          classSet
}

func (p *hostPool) get(key hostKey) *http.Transport {
	p.mu.Lock()
	defer p.mu.Unlock()
	tr, ok := p.m[key]
	if !ok {
		tr = p.template.Clone()
		p.m[key] = tr
	}
	return tr
}

func (p *hostPool) RoundTrip(req *http.Request) (*http.Response, error) {
	hop, _ := hopPolicyOf(req.Context())
	return p.get(hostKey{req.URL.Scheme, req.URL.Host, FamilyOf(req.Context()), hop}).RoundTrip(req)
}

// forget drops the transports of scheme://host, of every family and hop.
func (p *hostPool) forget(scheme, host string) {
	var gone []*http.Transport
	p.mu.Lock()
	for k, tr := range p.m {
		if k.scheme == scheme && k.host == host {
			gone = append(gone, tr)
			delete(p.m, k)
		}
	}
	p.mu.Unlock()
	for _, tr := range gone {
		tr.CloseIdleConnections()
	}
}

func (p *hostPool) CloseIdleConnections() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, tr := range p.m {
		tr.CloseIdleConnections()
	}
	p.template.CloseIdleConnections()
}

// checkRedirect is the http.Client redirect policy: at most MaxRedirects hops,
// http and https only, never https→http. Redirects to other hosts are followed
// (mirror networks do that) where the addresses they reach are allowed
// (redirectpolicy.go: judged when the hop's connection is dialled); the
// final URL ends up in Result.FinalURL. A request that is not to be
// redirected elsewhere (Post: a signed trigger) follows a redirect only
// to its own origin, and without the headers its caller gave it.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) == 0 {
		return nil
	}
	if p, ok := req.Context().Value(attemptsKey{}).(*probe); ok && p.ownOrigin {
		if !sameOrigin(req, via[0]) {
			return fmt.Errorf("%w: not following a redirect to another host, %s: this request goes only to its configured URL", ErrRedirect, safeURL(req.URL))
		}
		for _, k := range p.ownHeaders {
			req.Header.Del(k)
		}
	}
	prev := via[len(via)-1].URL
	switch req.URL.Scheme {
	case "http", "https":
	default:
		return fmt.Errorf("%w: redirect to unsupported scheme %q", ErrRedirect, clip(req.URL.Scheme, 16))
	}
	if prev.Scheme == "https" && req.URL.Scheme == "http" {
		return fmt.Errorf("%w: https→http downgrade to %s", ErrRedirect, safeURL(req.URL))
	}
	if n := c.opts.MaxRedirects; n < 0 || len(via) > n {
		for _, v := range via {
			if v.URL.String() == req.URL.String() {
				return fmt.Errorf("%w: redirect loop at %s", ErrRedirect, safeURL(req.URL))
			}
		}
		return fmt.Errorf("%w: more than %d redirects", ErrRedirect, max(n, 0))
	}
	return nil
}

// checkRetry is the retry policy: retry only what may go away by itself.
// It returns a nil error in every case, so that the last response or error
// reaches the caller unchanged through PassthroughErrorHandler.
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, nil
	}
	if err != nil {
		return retryableError(err), nil
	}
	if resp == nil {
		return false, nil
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return true, nil
	case resp.StatusCode == http.StatusNotImplemented:
		return false, nil // "this server does not do that": retrying will not help
	case resp.StatusCode >= 500 && resp.StatusCode <= 599:
		return true, nil
	}
	return false, nil
}

// retryableError reports whether a transport error is worth another attempt:
// timeouts, connection failures and temporary DNS failures, but not TLS
// errors, redirect refusals, oversized headers, nor a name that does not
// exist.
func retryableError(err error) bool {
	k, _ := classifyError(err)
	switch k {
	case KindTimeout, KindConnect:
		return true
	case KindDNS:
		var de *net.DNSError
		return errors.As(err, &de) && !de.IsNotFound && (de.IsTemporary || de.IsTimeout)
	}
	return false
}

// cappedBackoff is the wait before retry attemptNum+1: the mirror's
// Retry-After when it sent one (on any status), otherwise exponential backoff
// with full jitter between min and min·2^attemptNum; either way clamped to
// [min, max]. The library's own backoff does not cap Retry-After, so a mirror
// answering "Retry-After: 3600" would stall a check for an hour.
func cappedBackoff(minWait, maxWait time.Duration, attemptNum int, resp *http.Response) time.Duration {
	if resp != nil {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return min(max(d, minWait), maxWait)
		}
	}
	ceil := minWait // min·2^attemptNum, capped at max without overflowing
	for i := 0; i < attemptNum && ceil < maxWait; i++ {
		if ceil > maxWait/2 {
			ceil = maxWait
			break
		}
		ceil = max(ceil*2, 1)
	}
	ceil = min(ceil, maxWait)
	wait := minWait
	if ceil > minWait {
		wait += rand.N(ceil - minWait + 1)
	}
	return min(max(wait, minWait), maxWait)
}

// retryAfter parses a Retry-After value: delay-seconds or an HTTP-date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second) // avoid overflow; capped by the caller anyway
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// attemptsKey carries a *int in a request context: countAttempt stores the
// number of the attempt being made into it.
type attemptsKey struct{}

// countAttempt is the library's RequestLogHook, called before every attempt
// with the retry number (0 for the first attempt).
func countAttempt(_ retryablehttp.Logger, req *http.Request, retry int) {
	if p, ok := req.Context().Value(attemptsKey{}).(*probe); ok {
		p.last = retry + 1
	}
}

// leveledLogger adapts slog onto retryablehttp.LeveledLogger, everything at
// debug level: a failed request is routine for a checker, and the outcome is
// reported through Result anyway. The URLs the library logs lose their
// user info (it only masks the password).
type leveledLogger struct{ l *slog.Logger }

func (a leveledLogger) Error(msg string, kv ...any) { a.l.Debug("retryablehttp: "+msg, safeKV(kv)...) }
func (a leveledLogger) Info(msg string, kv ...any)  { a.l.Debug("retryablehttp: "+msg, safeKV(kv)...) }
func (a leveledLogger) Debug(msg string, kv ...any) { a.l.Debug("retryablehttp: "+msg, safeKV(kv)...) }
func (a leveledLogger) Warn(msg string, kv ...any)  { a.l.Debug("retryablehttp: "+msg, safeKV(kv)...) }

// safeKV is kv with the value of every "url" key without user info.
func safeKV(kv []any) []any {
	for i := 0; i+1 < len(kv); i += 2 {
		if k, ok := kv[i].(string); ok && k == "url" {
			if v, ok := kv[i+1].(string); ok {
				kv[i+1] = safetext.URL(v)
			}
		}
	}
	return kv
}

// checkTransport is the http.RoundTripper under the http.Client. It
//   - sets User-Agent and Accept-Encoding: identity on every request (every
//     redirect hop and retry included);
//   - gives each round trip its own context and arms the minimum-rate
//     timer on the response body: when fewer than `need` bytes arrive
//     within `idle`, the round trip's context is cancelled with a
//     *SlowBodyError (ErrBodyIdle), which aborts a blocked read wherever
//     it happens (our body reader, the retry library's drain, the
//     http.Client's close of a redirect body);
//   - deliberately does NOT implement CloseIdleConnections, so the retry
//     library's call on every final failure does not drop every mirror's
//     pooled connections.
type checkTransport struct {
	c         *Client
	next      http.RoundTripper
	userAgent string
	idle      time.Duration
	minRate   int64 // bytes a second, for the error's words
	need      int64 // bytes every idle window must bring
}

func (t *checkTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := guarded(req.Context()); err != nil {
		return nil, err
	}
	if req.Response != nil {
		// A redirect hop: its connection may reach only what the
		// redirect policy allows (judged as it is dialled).
		req = req.WithContext(context.WithValue(req.Context(), hopKey{}, t.c.hopPolicy(req)))
	}
	if waited, err := paced(req.Context()); err != nil {
		return nil, err
	} else if waited {
		if err := guarded(req.Context()); err != nil { // the wait may have outlasted the lease
			return nil, err
		}
	}
	// The probers set both headers already (and redirects copy them):
	// then the request goes as it is, without a copy of its header.
	hdrOK := oneValue(req.Header, "User-Agent", t.userAgent) && oneValue(req.Header, "Accept-Encoding", "identity")
	if req.Method == http.MethodHead && hdrOK {
		// A HEAD answer has no body to guard: no timer, no context.
		return t.next.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	r := req.WithContext(ctx) // shallow copy: the caller's request is not modified
	if !hdrOK {
		r.Header = req.Header.Clone()
		if r.Header == nil {
			r.Header = make(http.Header)
		}
		r.Header.Set("User-Agent", t.userAgent)
		r.Header.Set("Accept-Encoding", "identity")
	}

	resp, err := t.next.RoundTrip(r)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	b := &idleBody{rc: resp.Body, ctx: ctx, cancel: cancel, idle: t.idle, need: t.need}
	b.timer = time.AfterFunc(t.idle, func() {
		cancel(&SlowBodyError{Got: b.progress.Load(), Window: t.idle, MinRate: t.minRate})
	})
	resp.Body = b
	return resp, nil
}

// oneValue reports whether h holds exactly the value v under the canonical
// key.
func oneValue(h http.Header, key, v string) bool {
	vs := h[key]
	return len(vs) == 1 && vs[0] == v
}

// idleBody is a response body guarded by the minimum-rate timer.
type idleBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	idle   time.Duration
	need   int64
	// progress counts the bytes read since the timer last restarted
	// (read by the timer's function too).
	progress atomic.Int64
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		// The timer restarts only once a window's worth of bytes came
		// in since it last did: a body must keep the minimum rate, not
		// merely deliver something now and then.
		if b.progress.Add(int64(n)) >= b.need {
			b.timer.Reset(b.idle)
			b.progress.Store(0)
		}
	}
	if err != nil && err != io.EOF && !errors.Is(err, ErrBodyIdle) {
		// The transport reports a cancelled round trip as the context's
		// error or, in recent Go versions, its cause; make sure the idle
		// timer is recognisable either way.
		if cause := context.Cause(b.ctx); errors.Is(cause, ErrBodyIdle) {
			err = fmt.Errorf("%w (%w)", cause, err)
		}
	}
	return n, err
}

// Close stops the timer, closes the body and releases the round trip's
// context.
func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}
