// Package faultmirror runs hostile mirrors for tests and the demo: each
// Mirror serves a release like a good mirror, except for one fault, on one
// file or on the whole mirror — every failure of docs/CONTRACTS.md, section 5
// (Failure kinds), that a real server can produce, on demand: 404, 403, 5xx,
// a stalled body, an endless body, a body cut short under a correct
// Content-Length, a wrong Content-Length, a flipped byte, a redirect loop, a
// redirect to another host, an https→http downgrade, a certificate that does
// not verify, a refused connection, a name that does not resolve, a drip of
// 1,100 bytes every 1.5 seconds, a gzip-encoded answer despite
// Accept-Encoding: identity, headers too large to accept, and a redirect
// into sentry's own network.
//
// Servers listen on loopback ports; Close a Mirror when done. Every server
// of a Mirror gives up its hanging answers when the client goes away or the
// Mirror is closed, so no fault outlives its test.
package faultmirror

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mirrorsentry/sentry/sentry/demo/democa"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// Fault is one way a mirror misbehaves. The values are the names used in
// docs/FAULTS.md and in the tests' fault table.
type Fault string

// The faults. File faults affect the file given to New (the others are
// served right); mirror faults affect every request.
const (
	// NotFound answers the file 404.
	NotFound Fault = "404"
	// Forbidden answers the file 403.
	Forbidden Fault = "403"
	// ServerError answers the whole mirror 503 (with Retry-After: 1).
	ServerError Fault = "5xx"
	// Stall sends the headers and half the file, then nothing, holding the
	// connection open.
	Stall Fault = "stalled body"
	// Endless answers the file with a chunked body that never ends.
	Endless Fault = "endless body"
	// Truncated declares the right Content-Length, sends half of the file
	// and closes the connection.
	Truncated Fault = "truncated body"
	// WrongLength declares (and sends) a Content-Length 100 bytes short of
	// the file's size; HEAD says the same.
	WrongLength Fault = "wrong Content-Length"
	// FlippedByte serves the file with one byte changed, same size.
	FlippedByte Fault = "flipped byte"
	// RedirectLoop answers the file with a redirect to itself.
	RedirectLoop Fault = "redirect loop"
	// RedirectOtherHost redirects every request to another host (another
	// loopback server) that serves the release right.
	RedirectOtherHost Fault = "redirect to another host"
	// Downgrade is an https mirror (its certificate verifies against
	// RootCAs) that redirects every request to the same path over http.
	Downgrade Fault = "https to http downgrade"
	// BadCertificate is an https mirror whose certificate does not verify
	// against RootCAs (nor the system pool).
	BadCertificate Fault = "certificate does not verify"
	// Refused is a loopback port where nothing listens.
	Refused Fault = "connection refused"
	// Unresolvable is a host name under .invalid, which never resolves.
	Unresolvable Fault = "unresolvable name"
	// Drip sends the file's headers and then DripChunk bytes every
	// DripEvery: over a kilobyte a second-and-a-half, so that an idle
	// timer, even one wanting a kilobyte per window, never fires.
	Drip Fault = "slow drip"
	// Gzip answers the file gzip-compressed with Content-Encoding: gzip
	// whatever the request's Accept-Encoding, HEAD included.
	Gzip Fault = "gzip-encoded answer"
	// HugeHeaders answers the file with 1 MiB of response headers.
	HugeHeaders Fault = "huge headers"
	// RedirectInternal is a mirror on the Internet (on PublicAddr, which
	// the client must count as public: checks.ClientOptions.PublicPrefixes)
	// redirecting the file to a service on 127.0.0.1, as a hostile mirror
	// would send sentry to its own API or to a cloud's metadata service.
	// InternalRequests counts what reached that service.
	RedirectInternal Fault = "redirect into sentry's network"
)

// PublicAddr is the address of the RedirectInternal mirror: a loopback
// address standing for one on the Internet, in the clients that say so.
var PublicAddr = netip.MustParseAddr("127.0.0.2")

// All lists every fault, in the order of docs/FAULTS.md.
func All() []Fault {
	return []Fault{
		NotFound, Forbidden, ServerError, Stall, Endless, Truncated, WrongLength,
		FlippedByte, RedirectLoop, RedirectOtherHost, Downgrade, BadCertificate,
		Refused, Unresolvable, Drip, Gzip, HugeHeaders, RedirectInternal,
	}
}

// Whole reports whether f affects the whole mirror rather than one file.
func (f Fault) Whole() bool {
	switch f {
	case ServerError, RedirectOtherHost, Downgrade, BadCertificate, Refused, Unresolvable:
		return true
	}
	return false
}

// DripChunk bytes are sent every DripEvery by a Drip answer: the drip
// that held a check of a 318 KB file for 7 minutes (issue 26).
const (
	DripChunk = 1100
	DripEvery = 1500 * time.Millisecond
)

// Mirror is a mirror with one fault.
type Mirror struct {
	// URL is the mirror's base URL, its bouncer baseurl
	// ("http://127.0.0.1:PORT/pub", "https://…" for the TLS faults).
	URL string
	// Name is "fault-" and a short form of the fault.
	Name  string
	Fault Fault
	// Path is the faulty file (relative to the release directory); ""
	// for the faults of the whole mirror.
	Path string

	files   *localmirror.Server // the good copy the fault is put in front of
	servers []interface{ Close() error }
	closing chan struct{}
	once    sync.Once

	faulty   atomic.Int64 // requests answered with the fault
	sent     atomic.Int64 // body bytes sent by faulty answers
	internal atomic.Int64 // requests that reached the internal service
}

// InternalRequests returns how many requests reached the internal service
// a RedirectInternal mirror redirects to: 0 when the redirect was refused.
func (m *Mirror) InternalRequests() int64 { return m.internal.Load() }

// FaultyRequests returns how many requests were answered with the fault.
func (m *Mirror) FaultyRequests() int64 { return m.faulty.Load() }

// BytesSent returns how many body bytes the faulty answers sent.
func (m *Mirror) BytesSent() int64 { return m.sent.Load() }

// Close stops every server of the mirror and releases hanging answers.
func (m *Mirror) Close() error {
	m.once.Do(func() { close(m.closing) })
	var errs []error
	for i := len(m.servers) - 1; i >= 0; i-- {
		errs = append(errs, m.servers[i].Close())
	}
	return errors.Join(errs...)
}

// New starts a mirror holding rel with fault f. path names the faulty file
// for file faults (it must be a file of rel) and is ignored for the faults
// of the whole mirror.
func New(f Fault, rel *localmirror.Release, path string) (*Mirror, error) {
	m := &Mirror{Fault: f, Name: "fault-" + shortName(f), closing: make(chan struct{})}
	if !f.Whole() {
		if _, ok := rel.Files[path]; !ok {
			return nil, fmt.Errorf("faultmirror: %q is not a file of release %s", path, rel.Name)
		}
		m.Path = path
	}
	files, err := localmirror.NewStatic(m.Name, rel)
	if err != nil {
		return nil, fmt.Errorf("faultmirror: start %s: %w", f, err)
	}
	m.files = files
	m.servers = append(m.servers, files)
	if err := m.setup(rel); err != nil {
		m.Close()
		return nil, fmt.Errorf("faultmirror: start %s: %w", f, err)
	}
	return m, nil
}

func shortName(f Fault) string {
	s := strings.NewReplacer(" ", "-", "→", "-", "/", "-", "'", "").Replace(strings.ToLower(string(f)))
	return strings.Trim(s, "-")
}

// setup installs the fault.
func (m *Mirror) setup(rel *localmirror.Release) error {
	s := m.files
	m.URL = s.URL
	full := "/pub" + rel.Dir + m.Path
	body := rel.Files[m.Path]
	file := func(h func(w http.ResponseWriter, r *http.Request)) {
		s.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != full {
				return false
			}
			m.faulty.Add(1)
			h(w, r)
			return true
		})
	}
	switch m.Fault {
	case NotFound:
		file(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	case Forbidden:
		file(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "forbidden", http.StatusForbidden) })
	case ServerError:
		s.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
			m.faulty.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return true
		})
	case Stall:
		file(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			if r.Method == http.MethodHead {
				return
			}
			m.write(w, body[:len(body)/2])
			m.hold(r)
		})
	case Endless:
		file(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead {
				return // no length: the size is not reported
			}
			buf := bytes.Repeat([]byte("x"), 32<<10)
			for r.Context().Err() == nil && !m.closed() {
				if !m.write(w, buf) {
					return
				}
			}
			// Never end the chunked body cleanly: an endless answer
			// cut by Close must not look whole to the client.
			abort(w)
		})
	case Truncated:
		file(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			if r.Method == http.MethodHead {
				return
			}
			m.write(w, body[:len(body)/2])
			abort(w)
		})
	case WrongLength:
		short := body[:max(len(body)-100, 0)]
		file(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(short)))
			if r.Method == http.MethodHead {
				return
			}
			m.write(w, short)
		})
	case FlippedByte:
		s.Put(rel, m.Path, localmirror.Flip(body))
		s.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path == full {
				m.faulty.Add(1) // counted; the store serves the changed copy
			}
			return false
		})
	case RedirectLoop:
		file(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.EscapedPath(), http.StatusFound)
		})
	case Drip:
		file(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			if r.Method == http.MethodHead {
				return
			}
			t := time.NewTicker(DripEvery)
			defer t.Stop()
			for i := 0; i < len(body); i += DripChunk {
				if !m.write(w, body[i:min(i+DripChunk, len(body))]) {
					return
				}
				select {
				case <-t.C:
				case <-r.Context().Done():
					return
				case <-m.closing:
					return
				}
			}
		})
	case Gzip:
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		if _, err := zw.Write(body); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		file(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Length", strconv.Itoa(gz.Len()))
			if r.Method == http.MethodHead {
				return
			}
			m.write(w, gz.Bytes())
		})
	case HugeHeaders:
		file(func(w http.ResponseWriter, r *http.Request) {
			v := strings.Repeat("h", 8<<10)
			for i := range 128 { // 1 MiB of headers
				w.Header().Set("X-Filler-"+strconv.Itoa(i), v)
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			if r.Method == http.MethodHead {
				return
			}
			m.write(w, body)
		})
	case RedirectOtherHost:
		other, err := localmirror.NewStatic(m.Name+"-other", rel)
		if err != nil {
			return err
		}
		m.servers = append(m.servers, other)
		m.URL = m.redirector(other.URL, false)
	case Downgrade:
		m.URL = m.redirector(s.URL, true)
	case BadCertificate:
		srv := httptest.NewUnstartedServer(s)
		srv.Config.ErrorLog = quiet // "TLS handshake error": the fault itself
		srv.StartTLS()              // the httptest certificate: not in RootCAs
		m.servers = append(m.servers, closer(srv.Close))
		m.URL = srv.URL + "/pub"
	case Refused:
		u, c, err := refusingURL()
		if err != nil {
			return err
		}
		m.servers = append(m.servers, c)
		m.URL = u
	case Unresolvable:
		m.URL = "http://" + m.Name + ".sentry-test.invalid/pub"
	case RedirectInternal:
		internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.internal.Add(1)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"internal": "sentry's own API or a metadata service", "size": %d}`, len(body))
		}))
		m.servers = append(m.servers, closer(internal.Close))
		file(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, internal.URL+"/api/mirrors", http.StatusFound)
		})
		ln, err := net.Listen("tcp", netip.AddrPortFrom(PublicAddr, 0).String())
		if err != nil {
			return err
		}
		srv := httptest.NewUnstartedServer(s)
		srv.Listener.Close()
		srv.Listener = ln
		srv.Start()
		m.servers = append(m.servers, closer(srv.Close))
		m.URL = srv.URL + "/pub"
	default:
		return fmt.Errorf("unknown fault %q", m.Fault)
	}
	return nil
}

// redirector starts a server answering every request with a redirect to
// the same path under target (a base URL ending in /pub), over https with a
// certificate from RootCAs when tls is set, and returns its base URL.
func (m *Mirror) redirector(target string, useTLS bool) string {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.faulty.Add(1)
		to := strings.TrimSuffix(target, "/pub") + r.URL.EscapedPath()
		http.Redirect(w, r, to, http.StatusFound)
	})
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = quiet
	if useTLS {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert()}}
		srv.StartTLS()
	} else {
		srv.Start()
	}
	m.servers = append(m.servers, closer(srv.Close))
	return srv.URL + "/pub"
}

// refusingURL returns a base URL on a loopback port that is bound but not
// listening: connections to it are refused, and, unlike a port merely
// closed, no other server of a parallel test can take it meanwhile. Close
// the closer to free the port.
func refusingURL() (string, io.Closer, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("socket: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return "", nil, fmt.Errorf("bind: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		return "", nil, fmt.Errorf("getsockname: %w", err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	return fmt.Sprintf("http://127.0.0.1:%d/pub", port), closer(func() { syscall.Close(fd) }), nil
}

// quiet discards the servers' own logs (handshake errors are the point).
var quiet = log.New(io.Discard, "", 0)

type closer func()

func (c closer) Close() error { c(); return nil }

func (m *Mirror) closed() bool {
	select {
	case <-m.closing:
		return true
	default:
		return false
	}
}

// write sends b and flushes; false when the client went away.
func (m *Mirror) write(w http.ResponseWriter, b []byte) bool {
	n, err := w.Write(b)
	m.sent.Add(int64(n))
	if err != nil {
		return false
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	return true
}

// hold keeps an answer open until the client or the mirror goes away.
func (m *Mirror) hold(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-m.closing:
	}
}

// abort closes the connection under a half-sent answer.
func abort(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// RootCAs returns the pool that verifies the certificates of the Downgrade
// mirror (and not the BadCertificate one): the demo's authority
// (democa). Give it to checks.ClientOptions.
func RootCAs() (*x509.CertPool, error) { return democa.Pool() }

func serverCert() tls.Certificate {
	c, err := democa.ServerCert()
	if err != nil {
		panic(err) // RootCAs reports it; a test that ignored that gets here
	}
	return c
}
