package faultmirror

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// The tests' release: the faulty file, with spaces in its name as bouncer's
// have, and another one the file faults leave alone.
const (
	faulty = "win32/de/Firefox Setup 1.5.exe"
	other  = "linux-x86_64/de/firefox-1.5.tar.bz2"
)

func testRelease() *localmirror.Release {
	return &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{
		faulty: localmirror.Content(faulty, 64<<10),
		other:  localmirror.Content(other, 40_000),
	}}
}

// wait bounds every request of these tests: generous, for a loaded
// machine; no test is meant to come near it.
const wait = time.Minute

// newClient is a client that trusts RootCAs (or no certificate at all),
// follows no redirect and leaves the encoding of answers alone, so that a
// test sees what the mirror sent.
func newClient(t *testing.T, insecure bool) *http.Client {
	t.Helper()
	pool, err := RootCAs()
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{
		TLSClientConfig:    &tls.Config{RootCAs: pool, InsecureSkipVerify: insecure},
		DisableCompression: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// open sends a request and returns the answer unread (the body is closed
// when the test ends) and the request's cancel.
func open(t *testing.T, c *http.Client, method, u string) (*http.Response, context.CancelFunc, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := c.Do(req)
	if err == nil {
		t.Cleanup(func() { resp.Body.Close() })
	}
	return resp, cancel, err
}

// answer is an answer read whole; err is what reading it ended with.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func fetch(t *testing.T, c *http.Client, method, u string) answer {
	t.Helper()
	resp, _, err := open(t, c, method, u)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	b, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b, err}
}

func fileURL(base, path string) string {
	return base + (&url.URL{Path: "/firefox/releases/1.5/" + path}).EscapedPath()
}

// served wants the file whole and right from the URL.
func served(t *testing.T, c *http.Client, u string, want []byte) {
	t.Helper()
	if a := fetch(t, c, http.MethodGet, u); a.status != 200 || a.err != nil || !bytes.Equal(a.body, want) {
		t.Errorf("GET %s: %d, %d bytes, %v; want the file, %d bytes", u, a.status, len(a.body), a.err, len(want))
	}
}

// TestFaults: each fault, on demand, as the wire shows it — and, for the
// faults of one file, the release's other files served right.
func TestFaults(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		fault Fault
		check func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client)
	}{
		{NotFound, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			if a := fetch(t, c, http.MethodGet, fileURL(m.URL, faulty)); a.status != 404 {
				t.Errorf("%d, want 404", a.status)
			}
		}},
		{Forbidden, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			if a := fetch(t, c, http.MethodGet, fileURL(m.URL, faulty)); a.status != 403 {
				t.Errorf("%d, want 403", a.status)
			}
		}},
		{ServerError, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			for _, u := range []string{fileURL(m.URL, faulty), fileURL(m.URL, other), m.URL + "/", m.URL + "/x"} {
				if a := fetch(t, c, http.MethodGet, u); a.status != 503 || a.header.Get("Retry-After") != "1" {
					t.Errorf("%s: %d, Retry-After %q; want 503, 1", u, a.status, a.header.Get("Retry-After"))
				}
			}
		}},
		{Stall, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			body := rel.Files[faulty]
			resp, cancel, err := open(t, c, http.MethodGet, fileURL(m.URL, faulty))
			if err != nil {
				t.Fatal(err)
			}
			half := make([]byte, len(body)/2)
			if _, err := io.ReadFull(resp.Body, half); err != nil || resp.ContentLength != int64(len(body)) || !bytes.Equal(half, body[:len(body)/2]) {
				t.Errorf("Content-Length %d, first half: %v; want the file's length and its first half", resp.ContentLength, err)
			}
			cancel()
			if rest, err := io.ReadAll(resp.Body); len(rest) != 0 || err == nil {
				t.Errorf("after half the file: %d more bytes, %v; want nothing more", len(rest), err)
			}
		}},
		{Endless, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			resp, cancel, err := open(t, c, http.MethodGet, fileURL(m.URL, faulty))
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.CopyN(io.Discard, resp.Body, 4<<20) // 64 times the file
			cancel()
			if err != nil || resp.ContentLength != -1 {
				t.Errorf("read %d bytes: %v, Content-Length %d; want 4 MiB of no announced length", n, err, resp.ContentLength)
			}
			if a := fetch(t, c, http.MethodHead, fileURL(m.URL, faulty)); a.status != 200 || a.header.Get("Content-Length") != "" {
				t.Errorf("HEAD: %d, Content-Length %q; want no length", a.status, a.header.Get("Content-Length"))
			}
		}},
		{Truncated, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			body := rel.Files[faulty]
			a := fetch(t, c, http.MethodGet, fileURL(m.URL, faulty))
			if a.header.Get("Content-Length") != "65536" || !bytes.Equal(a.body, body[:len(body)/2]) || !errors.Is(a.err, io.ErrUnexpectedEOF) {
				t.Errorf("Content-Length %q, %d bytes, %v; want the file's length, its first half, an unexpected EOF",
					a.header.Get("Content-Length"), len(a.body), a.err)
			}
		}},
		{WrongLength, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			body := rel.Files[faulty]
			for _, method := range []string{http.MethodHead, http.MethodGet} {
				a := fetch(t, c, method, fileURL(m.URL, faulty))
				if a.status != 200 || a.header.Get("Content-Length") != "65436" {
					t.Errorf("%s: %d, Content-Length %q; want 100 bytes short", method, a.status, a.header.Get("Content-Length"))
				}
				if method == http.MethodGet && (a.err != nil || !bytes.Equal(a.body, body[:len(body)-100])) {
					t.Errorf("GET: %d bytes, %v; want the file less its last 100 bytes", len(a.body), a.err)
				}
			}
		}},
		{FlippedByte, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			served(t, c, fileURL(m.URL, faulty), localmirror.Flip(rel.Files[faulty]))
			if bytes.Equal(localmirror.Flip(rel.Files[faulty]), rel.Files[faulty]) {
				t.Error("the release itself was changed")
			}
		}},
		{RedirectLoop, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			u := fileURL(m.URL, faulty)
			if a := fetch(t, c, http.MethodGet, u); a.status != 302 || a.header.Get("Location") != pathOf(t, u) {
				t.Errorf("%d to %q; want a 302 to itself, %s", a.status, a.header.Get("Location"), pathOf(t, u))
			}
		}},
		{RedirectOtherHost, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			for _, p := range []string{faulty, other} {
				u := fileURL(m.URL, p)
				a := fetch(t, c, http.MethodGet, u)
				to := a.header.Get("Location")
				if a.status != 302 || !strings.HasPrefix(to, "http://127.0.0.1:") || hostOf(t, to) == hostOf(t, u) || pathOf(t, to) != pathOf(t, u) {
					t.Errorf("%s: %d to %q; want a 302 to the same path on another host", p, a.status, to)
					continue
				}
				served(t, c, to, rel.Files[p])
			}
		}},
		{Downgrade, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			if !strings.HasPrefix(m.URL, "https://127.0.0.1:") {
				t.Errorf("URL %q, want https", m.URL)
			}
			a := fetch(t, c, http.MethodGet, fileURL(m.URL, faulty)) // its certificate verifies against RootCAs
			to := a.header.Get("Location")
			if a.status != 302 || to != fileURL(m.files.URL, faulty) {
				t.Errorf("%d to %q; want a 302 to the same file over http", a.status, to)
				return
			}
			served(t, c, to, rel.Files[faulty])
		}},
		{BadCertificate, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			var verr *tls.CertificateVerificationError
			if _, _, err := open(t, c, http.MethodGet, fileURL(m.URL, faulty)); !strings.HasPrefix(m.URL, "https://") || !errors.As(err, &verr) {
				t.Errorf("%s: %v; want a certificate that does not verify", m.URL, err)
			}
			served(t, newClient(t, true), fileURL(m.URL, faulty), rel.Files[faulty]) // but for that, a good mirror
		}},
		{Refused, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			if _, _, err := open(t, c, http.MethodGet, fileURL(m.URL, faulty)); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("%s: %v; want the connection refused", m.URL, err)
			}
		}},
		{Unresolvable, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			host := hostOf(t, m.URL)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			var dnsErr *net.DNSError
			if _, err := net.DefaultResolver.LookupHost(ctx, host); !strings.HasSuffix(host, ".invalid") || !errors.As(err, &dnsErr) {
				t.Errorf("%s: %v; want a name under .invalid that does not resolve", host, err)
			}
		}},
		{Drip, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			body := rel.Files[faulty]
			resp, cancel, err := open(t, c, http.MethodGet, fileURL(m.URL, faulty))
			if err != nil {
				t.Fatal(err)
			}
			first := make([]byte, 2)
			if _, err := io.ReadFull(resp.Body, first); err != nil || resp.ContentLength != int64(len(body)) || !bytes.Equal(first, body[:2]) {
				t.Errorf("Content-Length %d, first bytes %v: %v; want the file's length and its first bytes", resp.ContentLength, first, err)
			}
			// Two bytes received: the mirror has sent its first chunk at
			// most, far from the whole file.
			if n := m.BytesSent(); n > DripChunk || len(body) <= 2*DripChunk {
				t.Errorf("%d bytes of %d sent by the time two arrived: not a drip of %d bytes a time", n, len(body), DripChunk)
			}
			cancel()
		}},
		{Gzip, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			for _, method := range []string{http.MethodHead, http.MethodGet} {
				a := fetch(t, c, method, fileURL(m.URL, faulty))
				if a.status != 200 || a.header.Get("Content-Encoding") != "gzip" {
					t.Errorf("%s despite identity: %d, Content-Encoding %q; want gzip", method, a.status, a.header.Get("Content-Encoding"))
				}
				if method == http.MethodHead {
					continue
				}
				zr, err := gzip.NewReader(bytes.NewReader(a.body))
				if err != nil {
					t.Fatal(err)
				}
				plain, err := io.ReadAll(zr)
				if err != nil || !bytes.Equal(plain, rel.Files[faulty]) || a.header.Get("Content-Length") == "65536" {
					t.Errorf("GET: %v, Content-Length %q; want the file gzipped, its compressed length", err, a.header.Get("Content-Length"))
				}
			}
		}},
		{HugeHeaders, func(t *testing.T, m *Mirror, rel *localmirror.Release, c *http.Client) {
			a := fetch(t, c, http.MethodGet, fileURL(m.URL, faulty)) // Go's client takes up to 10 MiB
			n := 0
			for k, vs := range a.header {
				for _, v := range vs {
					n += len(k) + len(v)
				}
			}
			if n < 1<<20 || !bytes.Equal(a.body, rel.Files[faulty]) {
				t.Errorf("%d bytes of headers, %d of body; want 1 MiB of headers and the file", n, len(a.body))
			}
		}},
	} {
		t.Run(string(c.fault), func(t *testing.T) {
			t.Parallel()
			rel := testRelease()
			m, err := New(c.fault, rel, faulty)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			client := newClient(t, false)
			c.check(t, m, rel, client)
			// No request reaches the mirror through these three.
			noRequest := c.fault == Refused || c.fault == Unresolvable || c.fault == BadCertificate
			if m.FaultyRequests() == 0 && !noRequest {
				t.Error("no request counted as faulty")
			}
			if c.fault.Whole() {
				if m.Path != "" {
					t.Errorf("a fault of the whole mirror on path %q", m.Path)
				}
				return
			}
			// One file's fault: the others are served right, and
			// not counted.
			before := m.FaultyRequests()
			if m.Path != faulty || !strings.HasPrefix(m.URL, "http://127.0.0.1:") {
				t.Errorf("path %q, URL %q; want %q on a loopback http mirror", m.Path, m.URL, faulty)
			}
			served(t, client, fileURL(m.URL, other), rel.Files[other])
			if m.FaultyRequests() != before {
				t.Errorf("a good file counted as faulty")
			}
		})
	}
}

// hostOf is the host:port of a URL.
func hostOf(t *testing.T, u string) string { return parse(t, u).Host }

// pathOf is the escaped path of a URL.
func pathOf(t *testing.T, u string) string { return parse(t, u).EscapedPath() }

func parse(t *testing.T, u string) *url.URL {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCloseEndsHangingAnswers: closing a mirror ends its answers that
// hang — the client still waiting — and their handlers return.
func TestCloseEndsHangingAnswers(t *testing.T) {
	t.Parallel()
	for _, f := range []Fault{Stall, Endless, Drip} {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			m, err := New(f, testRelease(), faulty)
			if err != nil {
				t.Fatal(err)
			}
			ended := make(chan struct{}, 1)
			m.files.Observe(func(*http.Request) func() { return func() { ended <- struct{}{} } })
			resp, _, err := open(t, newClient(t, false), http.MethodGet, fileURL(m.URL, faulty))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(resp.Body, make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			if err := m.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			m.Close() // again: nothing
			if _, err := io.Copy(io.Discard, resp.Body); err == nil {
				t.Error("the answer ended as if whole")
			}
			select {
			case <-ended:
			case <-time.After(wait):
				t.Fatal("the handler still runs after Close")
			}
		})
	}
}

// TestNew: the faults and their names, and what New refuses.
func TestNew(t *testing.T) {
	t.Parallel()
	rel := testRelease()
	names := map[string]Fault{}
	for _, f := range All() {
		name := "fault-" + shortName(f)
		if !regexp.MustCompile(`^fault-[a-z0-9]+(-[a-z0-9]+)*$`).MatchString(name) {
			t.Errorf("%s: name %q is not a plain name", f, name)
		}
		if g, ok := names[name]; ok {
			t.Errorf("%s and %s are both named %q", g, f, name)
		}
		names[name] = f
	}
	if len(names) != len(All()) {
		t.Errorf("%d names for %d faults", len(names), len(All()))
	}
	if _, err := New(NotFound, rel, "win32/de/none.exe"); err == nil || !strings.Contains(err.Error(), "win32/de/none.exe") {
		t.Errorf("a fault on a file not in the release: %v", err)
	}
	if _, err := New(Fault("teapot"), rel, faulty); err == nil || !strings.Contains(err.Error(), "teapot") {
		t.Errorf("an unknown fault: %v", err)
	}
	m, err := New(ServerError, rel, "ignored/for/the/whole/mirror")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Name != "fault-5xx" || m.Fault != ServerError || m.Path != "" {
		t.Errorf("%+v", m)
	}
}
