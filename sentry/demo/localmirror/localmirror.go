// Package localmirror runs local HTTP mirrors for tests and the demo: a
// staging master serving a release, and mirrors that behave like the kinds
// sentry meets — pull-through caches, trigger-synced and passive (cron)
// mirrors, and mirrors with a corrupt or missing file — and a real rsync
// daemon serving a mirror's tree (rsyncd.go), for the tests of rsync
// listings. Servers listen on loopback ports; Close them when done.
package localmirror

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirrorsentry/sentry/sentry/manifest"
)

// Release is a release's files by path relative to the release directory.
type Release struct {
	Name  string
	Dir   string // e.g. "/firefox/releases/1.5/" (with the release name in it)
	Files map[string][]byte
}

// Paths returns the release's file paths, sorted.
func (r *Release) Paths() []string {
	out := make([]string, 0, len(r.Files))
	for p := range r.Files {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Manifest returns a SHA256SUMS manifest of the release.
func (r *Release) Manifest() []byte {
	var entries []manifest.Entry
	for _, p := range r.Paths() {
		sum := sha256.Sum256(r.Files[p])
		entries = append(entries, manifest.Entry{Path: p, Algo: manifest.SHA256, Hash: hex.EncodeToString(sum[:]), Size: -1})
	}
	var b bytes.Buffer
	if err := manifest.WriteSums(&b, entries); err != nil {
		panic(err) // the release's own paths: a bug in the fixture
	}
	return b.Bytes()
}

// Server is one local HTTP server: the master or a mirror.
type Server struct {
	// URL is the base URL, the bouncer baseurl of a mirror or master.url:
	// "http://127.0.0.1:PORT/pub" ("https://…" for NewStaticTLS).
	URL string
	// Name is for the demo's and tests' messages.
	Name string

	prefix string // "/pub"
	srv    *http.Server
	ln     net.Listener

	mu    sync.Mutex
	files map[string][]byte // URL path (unescaped, with prefix) → body
	// tree, when set, is a directory that holds the same files (under
	// their paths without the prefix): what an rsync daemon serves.
	tree string
	// handlers answer, in order, before the file store, for the requests
	// they accept (returning false falls through).
	handlers []func(w http.ResponseWriter, r *http.Request) bool
	// observers see every request before any handler (Observe).
	observers []func(r *http.Request) func()

	inFlight    atomic.Int64
	maxInFlight atomic.Int64
	requests    atomic.Int64
	userAgents  sync.Map // string → struct{}
}

// Stats of the requests a server answered.
type Stats struct {
	Requests    int64
	MaxInFlight int64
}

// Stats returns the request count and the largest number of requests seen
// in flight at once.
func (s *Server) Stats() Stats {
	return Stats{Requests: s.requests.Load(), MaxInFlight: s.maxInFlight.Load()}
}

// UserAgents returns the distinct User-Agent headers the server saw.
func (s *Server) UserAgents() []string {
	var out []string
	s.userAgents.Range(func(k, _ any) bool { out = append(out, k.(string)); return true })
	sort.Strings(out)
	return out
}

func newServer(name string) (*Server, error) { return newServerTLS(name, nil) }

// newServerTLS is newServer, speaking https with cert when it is set.
func newServerTLS(name string, cert *tls.Certificate) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	scheme := "http://"
	if cert != nil {
		scheme = "https://"
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12})
	}
	s := &Server{Name: name, prefix: "/pub", ln: ln, files: map[string][]byte{}}
	s.URL = scheme + ln.Addr().String() + s.prefix
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server at once.
func (s *Server) Close() error { return s.srv.Close() }

// Put stores a file of the release at its path under the server.
func (s *Server) Put(rel *Release, path string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[s.prefix+rel.Dir+path] = body
	s.writeTree(rel.Dir+path, body)
}

// Tree makes dir hold the server's files from now on, under their paths
// (the release directory and the file's path), as an rsync daemon of the
// mirror would serve them: files put or removed later follow.
func (s *Server) Tree(dir string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tree = dir
	for p, body := range s.files {
		if err := s.writeTreeErr(strings.TrimPrefix(p, s.prefix), body); err != nil {
			return err
		}
	}
	return nil
}

// writeTree mirrors a file into the tree, if there is one. s.mu is held.
func (s *Server) writeTree(path string, body []byte) {
	if err := s.writeTreeErr(path, body); err != nil {
		panic(err) // the fixture's own directory: a bug in the test
	}
}

func (s *Server) writeTreeErr(path string, body []byte) error {
	if s.tree == "" {
		return nil
	}
	full := filepath.Join(s.tree, filepath.FromSlash(path))
	if body == nil {
		err := os.Remove(full)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	return os.WriteFile(full, body, 0o644)
}

// PutRaw stores a body at a path relative to the server's base URL.
func (s *Server) PutRaw(path string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[s.prefix+"/"+strings.TrimPrefix(path, "/")] = body
}

// Remove deletes a file of the release.
func (s *Server) Remove(rel *Release, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.files, s.prefix+rel.Dir+path)
	s.writeTree(rel.Dir+path, nil)
}

// Has reports whether the server holds the release file.
func (s *Server) Has(rel *Release, path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.files[s.prefix+rel.Dir+path]
	return ok
}

// PutRelease stores every file of rel.
func (s *Server) PutRelease(rel *Release) {
	for p, b := range rel.Files {
		s.Put(rel, p, b)
	}
}

// HandleFunc adds a handler consulted before the file store (and before
// handlers added earlier); it returns true when it answered.
func (s *Server) HandleFunc(h func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers = append([]func(http.ResponseWriter, *http.Request) bool{h}, s.handlers...)
}

// Observe adds a function called with every request as it arrives, before
// any handler; the function it returns, when not nil, is called once the
// request has been answered (the handler returned). Tests use it to see
// requests in flight.
func (s *Server) Observe(f func(r *http.Request) func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observers = append(s.observers, f)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	s.mu.Lock()
	obs := s.observers
	s.mu.Unlock()
	for _, o := range obs {
		if done := o(r); done != nil {
			defer done()
		}
	}
	for {
		m := s.maxInFlight.Load()
		if n <= m || s.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	s.requests.Add(1)
	s.userAgents.Store(r.UserAgent(), struct{}{})
	s.mu.Lock()
	hs := s.handlers
	s.mu.Unlock()
	for _, h := range hs {
		if h(w, r) {
			return
		}
	}
	s.serveFile(w, r)
}

func (s *Server) lookup(path string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.files[path]
	return b, ok
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, ok := s.lookup(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", fmt.Sprintf(`"%x"`, sha256.Sum256(body)))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// NewMaster starts a staging master serving rel and its SHA256SUMS.
func NewMaster(rel *Release) (*Server, error) {
	s, err := newServer("master")
	if err != nil {
		return nil, err
	}
	s.PutRelease(rel)
	s.Put(rel, "SHA256SUMS", rel.Manifest())
	return s, nil
}

// NewStatic starts a mirror holding a full copy of rel (change it with Put
// and Remove to make it corrupt or incomplete).
func NewStatic(name string, rel *Release) (*Server, error) { return newStatic(name, rel, nil) }

// NewStaticTLS is NewStatic over https, with cert (a certificate for
// 127.0.0.1, such as democa's).
func NewStaticTLS(name string, rel *Release, cert tls.Certificate) (*Server, error) {
	return newStatic(name, rel, &cert)
}

func newStatic(name string, rel *Release, cert *tls.Certificate) (*Server, error) {
	s, err := newServerTLS(name, cert)
	if err != nil {
		return nil, err
	}
	s.PutRelease(rel)
	return s, nil
}

// NewPullCache starts a pull-through cache of master: a request for a file
// it lacks is fetched from the master (as nginx proxy_cache does), kept,
// and served; X-Cache-Status says MISS or HIT.
func NewPullCache(name string, master *Server) (*Server, error) {
	s, err := newServer(name)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var fill sync.Mutex
	s.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return false
		}
		if _, ok := s.lookup(r.URL.Path); ok {
			w.Header().Set("X-Cache-Status", "HIT")
			return false
		}
		fill.Lock()
		defer fill.Unlock()
		rest := strings.TrimPrefix(r.URL.Path, s.prefix)
		u := master.URL + (&url.URL{Path: rest}).EscapedPath()
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return true
		}
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, "upstream: "+err.Error(), http.StatusBadGateway)
			return true
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			w.Header().Set("X-Cache-Status", "MISS")
			http.Error(w, "upstream: "+resp.Status, resp.StatusCode)
			return true
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
		if err != nil {
			http.Error(w, "upstream: "+err.Error(), http.StatusBadGateway)
			return true
		}
		s.mu.Lock()
		s.files[r.URL.Path] = body
		s.mu.Unlock()
		w.Header().Set("X-Cache-Status", "MISS")
		return false
	})
	return s, nil
}

// Trigger is a trigger-synced mirror: files appear after a correctly signed
// trigger, once the mirror has been polled SyncAfter more times.
type Trigger struct {
	*Server
	// TriggerURL is where sentry POSTs.
	TriggerURL string

	secret    []byte
	rel       *Release
	syncAfter int64
	polls     atomic.Int64
	triggered atomic.Bool
	synced    atomic.Bool
	received  atomic.Int64
	rejected  atomic.Int64
	lastBody  atomic.Value // []byte
}

// NewTrigger starts a trigger mirror of rel, checking signatures with
// secret; after a good trigger it syncs from its copy of the master's files
// once syncAfter more requests for release files have come in.
func NewTrigger(name string, rel *Release, secret []byte, syncAfter int) (*Trigger, error) {
	s, err := newServer(name)
	if err != nil {
		return nil, err
	}
	t := &Trigger{Server: s, secret: secret, rel: rel, syncAfter: int64(syncAfter)}
	t.TriggerURL = "http://" + s.ln.Addr().String() + "/trigger"
	s.HandleFunc(t.handle)
	return t, nil
}

func (t *Trigger) handle(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path == "/trigger" {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil || r.Method != http.MethodPost {
			http.Error(w, "bad trigger", http.StatusBadRequest)
			return true
		}
		mac := hmac.New(sha256.New, t.secret)
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if !hmac.Equal([]byte(r.Header.Get("X-Sentry-Signature")), []byte(want)) {
			t.rejected.Add(1)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return true
		}
		var tr struct {
			Release string   `json:"release"`
			Files   []string `json:"files"`
		}
		if err := json.Unmarshal(body, &tr); err != nil || tr.Release != t.rel.Name {
			http.Error(w, "bad trigger body", http.StatusBadRequest)
			return true
		}
		t.lastBody.Store(body)
		t.received.Add(1)
		t.polls.Store(0)
		t.triggered.Store(true)
		w.WriteHeader(http.StatusAccepted)
		return true
	}
	if t.triggered.Load() && !t.synced.Load() && strings.HasPrefix(r.URL.Path, t.prefix+t.rel.Dir) {
		if t.polls.Add(1) > t.syncAfter {
			t.PutRelease(t.rel)
			t.synced.Store(true)
		}
	}
	return false
}

// Triggers returns how many correctly signed triggers arrived, and how
// many were rejected for their signature.
func (t *Trigger) Triggers() (good, rejected int64) { return t.received.Load(), t.rejected.Load() }

// LastTrigger returns the body of the last good trigger.
func (t *Trigger) LastTrigger() []byte {
	b, _ := t.lastBody.Load().([]byte)
	return b
}

// NewPassive starts a passive mirror of rel that "syncs from cron": its
// files appear once it has answered syncAfter requests for release files.
func NewPassive(name string, rel *Release, syncAfter int) (*Server, error) {
	s, err := newServer(name)
	if err != nil {
		return nil, err
	}
	var polls atomic.Int64
	var synced atomic.Bool
	s.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		if !synced.Load() && strings.HasPrefix(r.URL.Path, s.prefix+rel.Dir) && polls.Add(1) > int64(syncAfter) {
			s.PutRelease(rel)
			synced.Store(true)
		}
		return false
	})
	return s, nil
}

// DeadURL returns a base URL on a loopback port where nothing listens.
func DeadURL() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/pub", nil
}

// Flip returns a copy of b with one byte changed, at the middle.
func Flip(b []byte) []byte {
	c := bytes.Clone(b)
	if len(c) > 0 {
		c[len(c)/2] ^= 0xff
	}
	return c
}

// Content returns n bytes of deterministic content for name, so fixtures
// need not be stored.
func Content(name string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	seed := sha256.Sum256([]byte(name))
	for len(out) < n {
		out = append(out, seed[:]...)
		seed = sha256.Sum256(seed[:])
	}
	return out[:n]
}

// Unavailable makes s answer 503 with Retry-After for every request
// of a release file, to simulate an overloaded mirror.
func Unavailable(s *Server) {
	s.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
		return true
	})
}

// StallBody makes path answer with full headers and half the body, then
// hold the connection open until the request's context ends.
func StallBody(s *Server, rel *Release, path string) {
	full := s.prefix + rel.Dir + path
	s.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != full {
			return false
		}
		body, ok := s.lookup(full)
		if !ok {
			return false
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodHead {
			return true
		}
		w.Write(body[:len(body)/2])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		<-r.Context().Done()
		return true
	})
}

// EndlessBody makes path answer a chunked body that never ends.
func EndlessBody(s *Server, rel *Release, path string) {
	full := s.prefix + rel.Dir + path
	s.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != full {
			return false
		}
		if r.Method == http.MethodHead {
			return true
		}
		buf := bytes.Repeat([]byte("x"), 32<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(buf); err != nil {
				return true
			}
		}
		return true
	})
}
