package localmirror

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/manifest"
)

// Paths of the tests' release: one with spaces, as bouncer's have.
const (
	setup = "win32/en-US/Firefox Setup 1.5.exe"
	tarb  = "linux-x86_64/de/firefox-1.5.tar.bz2"
)

func testRelease() *Release {
	return &Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{
		setup: Content(setup, 70_000),
		tarb:  Content(tarb, 90_001),
	}}
}

// client is the tests' HTTP client: no test waits on a server for long.
var client = &http.Client{Timeout: time.Minute}

// fileURL is the URL of a release file on s.
func fileURL(s *Server, rel *Release, path string) string {
	return s.URL + (&url.URL{Path: rel.Dir + path}).EscapedPath()
}

// reply is an answer read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with the headers given ("Name: value") and reads the
// whole answer.
func do(t *testing.T, method, u string, body []byte, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

// started takes a new server, or fails the test, and closes it when the
// test ends: started(t)(NewMaster(rel)).
func started(t *testing.T) func(*Server, error) *Server {
	return func(s *Server, err error) *Server {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

// TestMaster: the master serves every file of the release under its
// directory (names with spaces escaped), ranges of them, and a SHA256SUMS
// that Parse reads back as the files' digests; it refuses what it does not
// hold and every method but GET and HEAD.
func TestMaster(t *testing.T) {
	t.Parallel()
	rel := testRelease()
	m := started(t)(NewMaster(rel))
	if !strings.HasPrefix(m.URL, "http://127.0.0.1:") || !strings.HasSuffix(m.URL, "/pub") {
		t.Errorf("base URL %q, want http://127.0.0.1:PORT/pub", m.URL)
	}
	for _, p := range rel.Paths() {
		r := do(t, http.MethodGet, fileURL(m, rel, p), nil)
		if r.status != 200 || !bytes.Equal(r.body, rel.Files[p]) {
			t.Errorf("GET %s: %d, %d bytes; want the file", p, r.status, len(r.body))
		}
		if want := fmt.Sprintf(`"%x"`, sha256.Sum256(rel.Files[p])); r.header.Get("ETag") != want {
			t.Errorf("GET %s: ETag %q, want %q", p, r.header.Get("ETag"), want)
		}
	}
	r := do(t, http.MethodGet, fileURL(m, rel, setup), nil, "Range: bytes=100-199,-10")
	if r.status != 206 || !strings.HasPrefix(r.header.Get("Content-Type"), "multipart/byteranges") {
		t.Errorf("two ranges: %d, %s; want a multipart 206", r.status, r.header.Get("Content-Type"))
	}
	r = do(t, http.MethodHead, fileURL(m, rel, tarb), nil)
	if r.status != 200 || r.header.Get("Content-Length") != "90001" || len(r.body) != 0 {
		t.Errorf("HEAD: %d, Content-Length %q, %d body bytes", r.status, r.header.Get("Content-Length"), len(r.body))
	}

	sums := do(t, http.MethodGet, fileURL(m, rel, "SHA256SUMS"), nil)
	mf, err := manifest.Parse(bytes.NewReader(sums.body), "SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range mf.Entries() {
		paths = append(paths, e.Path)
		if sum := sha256.Sum256(rel.Files[e.Path]); e.Algo != manifest.SHA256 || e.Hash != hex.EncodeToString(sum[:]) {
			t.Errorf("SHA256SUMS: %s %s %s, want the file's sha256", e.Path, e.Algo, e.Hash)
		}
	}
	if !slices.Equal(paths, rel.Paths()) {
		t.Errorf("SHA256SUMS lists %q, want %q", paths, rel.Paths())
	}

	for _, c := range []struct {
		method, url string
		want        int
	}{
		{http.MethodGet, fileURL(m, rel, "win32/en-US/nothing.exe"), 404},
		{http.MethodGet, m.URL + (&url.URL{Path: "/" + setup}).EscapedPath(), 404}, // outside the release directory
		{http.MethodPost, fileURL(m, rel, setup), 405},
		{http.MethodPut, fileURL(m, rel, setup), 405},
	} {
		if r := do(t, c.method, c.url, []byte("x")); r.status != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.url, r.status, c.want)
		}
	}
	if m.Stats().Requests != 9 {
		t.Errorf("%d requests counted, want 9", m.Stats().Requests)
	}
}

// TestStaticChanged: a static mirror holds the release; Put, Remove and
// PutRaw change what it serves and Has says what it holds.
func TestStaticChanged(t *testing.T) {
	t.Parallel()
	rel := testRelease()
	s := started(t)(NewStatic("static", rel))
	if s.Name != "static" || !s.Has(rel, setup) || !s.Has(rel, tarb) {
		t.Fatalf("%s holds %v %v; want the release", s.Name, s.Has(rel, setup), s.Has(rel, tarb))
	}
	flipped := Flip(rel.Files[setup])
	s.Put(rel, setup, flipped)
	s.Remove(rel, tarb)
	s.PutRaw("/mirror.txt", []byte("hello"))
	if r := do(t, http.MethodGet, fileURL(s, rel, setup), nil); r.status != 200 || !bytes.Equal(r.body, flipped) {
		t.Errorf("after Put: %d, the changed copy %v", r.status, bytes.Equal(r.body, flipped))
	}
	if r := do(t, http.MethodGet, fileURL(s, rel, tarb), nil); r.status != 404 || s.Has(rel, tarb) {
		t.Errorf("after Remove: %d, Has %v; want 404", r.status, s.Has(rel, tarb))
	}
	if r := do(t, http.MethodGet, s.URL+"/mirror.txt", nil); r.status != 200 || string(r.body) != "hello" {
		t.Errorf("PutRaw: %d %q", r.status, r.body)
	}
	if !bytes.Equal(rel.Files[setup], Content(setup, 70_000)) {
		t.Error("Put changed the release itself")
	}
}

// TestTree: a server's tree holds its files under their paths from the
// moment it is set, and follows the files put and removed afterwards.
func TestTree(t *testing.T) {
	t.Parallel()
	rel, s, dir := treeMirror(t, "tree")
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel.Dir+p)))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(read(setup), rel.Files[setup]) || !bytes.Equal(read(tarb), rel.Files[tarb]) {
		t.Error("the tree does not hold the release")
	}
	s.Put(rel, "mac/fr/Firefox 1.5.dmg", []byte("dmg"))
	s.Remove(rel, tarb)
	s.Remove(rel, "never/there") // nothing to remove: no error
	if string(read("mac/fr/Firefox 1.5.dmg")) != "dmg" || read(tarb) != nil {
		t.Errorf("the tree does not follow: new file %q, removed file of %d bytes", read("mac/fr/Firefox 1.5.dmg"), len(read(tarb)))
	}
}

// treeMirror starts a static mirror of the test release whose files are
// also in a directory (Tree), and returns the release, the mirror and the
// directory.
func treeMirror(t *testing.T, name string) (*Release, *Server, string) {
	t.Helper()
	rel := testRelease()
	s := started(t)(NewStatic(name, rel))
	dir := t.TempDir()
	if err := s.Tree(dir); err != nil {
		t.Fatal(err)
	}
	return rel, s, dir
}

// TestPullCache: a file the cache lacks is fetched from the master once,
// kept and served (MISS, then HIT); a file the master lacks is a 404 and
// is not kept; the master gone, a miss is a 502.
func TestPullCache(t *testing.T) {
	t.Parallel()
	rel := testRelease()
	m := started(t)(NewMaster(rel))
	c := started(t)(NewPullCache("cache", m))
	if c.Has(rel, setup) {
		t.Fatal("a new cache holds a file")
	}
	for i, want := range []string{"MISS", "HIT"} {
		r := do(t, http.MethodGet, fileURL(c, rel, setup), nil)
		if r.status != 200 || !bytes.Equal(r.body, rel.Files[setup]) || r.header.Get("X-Cache-Status") != want {
			t.Errorf("request %d: %d, %d bytes, X-Cache-Status %q; want the file, %s", i+1, r.status, len(r.body), r.header.Get("X-Cache-Status"), want)
		}
	}
	if n := m.Stats().Requests; n != 1 || !c.Has(rel, setup) {
		t.Errorf("the master was asked %d times, the cache holds the file: %v; want once, kept", n, c.Has(rel, setup))
	}
	// A range of a miss: the whole file fetched, the range answered.
	if r := do(t, http.MethodGet, fileURL(c, rel, tarb), nil, "Range: bytes=0-0"); r.status != 206 || !bytes.Equal(r.body, rel.Files[tarb][:1]) ||
		r.header.Get("X-Cache-Status") != "MISS" || !c.Has(rel, tarb) {
		t.Errorf("a one-byte range of a miss: %d, %q, X-Cache-Status %q, kept %v", r.status, r.body, r.header.Get("X-Cache-Status"), c.Has(rel, tarb))
	}
	for range 2 {
		if r := do(t, http.MethodGet, fileURL(c, rel, "win32/de/none.exe"), nil); r.status != 404 || r.header.Get("X-Cache-Status") != "MISS" {
			t.Errorf("a file the master lacks: %d, X-Cache-Status %q; want a 404 MISS", r.status, r.header.Get("X-Cache-Status"))
		}
	}
	if n := m.Stats().Requests; n != 4 {
		t.Errorf("the master was asked %d times, want 4 (two files once, the missing one each time)", n)
	}
	if r := do(t, http.MethodPost, fileURL(c, rel, "mac/x.dmg"), nil); r.status != 405 || m.Stats().Requests != 4 {
		t.Errorf("POST: %d, the master asked %d times; want 405, not asked", r.status, m.Stats().Requests)
	}
	m.Close()
	if r := do(t, http.MethodGet, fileURL(c, rel, "mac/x.dmg"), nil); r.status != 502 {
		t.Errorf("the master gone: %d, want 502", r.status)
	}
	if r := do(t, http.MethodGet, fileURL(c, rel, setup), nil); r.status != 200 || r.header.Get("X-Cache-Status") != "HIT" {
		t.Errorf("the master gone, a kept file: %d %s; want a 200 HIT", r.status, r.header.Get("X-Cache-Status"))
	}
}

// sign is the signature a trigger carries: sha256= and the hex HMAC of
// the body.
func sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "X-Sentry-Signature: sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// TestTrigger: a trigger mirror takes only a correctly signed trigger of
// its release, and then holds the release once it has been asked for
// release files syncAfter more times; before a trigger, asking does not
// make it sync.
func TestTrigger(t *testing.T) {
	t.Parallel()
	rel := testRelease()
	secret := []byte("s3cret")
	tr, err := NewTrigger("trigger", rel, secret, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	if want := strings.TrimSuffix(tr.URL, "/pub") + "/trigger"; tr.TriggerURL != want {
		t.Errorf("TriggerURL %q, want %q", tr.TriggerURL, want)
	}
	file := fileURL(tr.Server, rel, setup)
	for range 5 {
		if r := do(t, http.MethodGet, file, nil); r.status != 404 {
			t.Fatalf("before any trigger: %d, want 404", r.status)
		}
	}
	body := []byte(`{"release":"1.5","files":["` + setup + `"]}`)
	other := []byte(`{"release":"2.0","files":[]}`)
	for _, c := range []struct {
		name   string
		method string
		body   []byte
		header string
		want   int
	}{
		{"no signature", http.MethodPost, body, "X-Other: 1", 401},
		{"signed with another secret", http.MethodPost, body, sign([]byte("other"), body), 401},
		{"the signature of another body", http.MethodPost, body, sign(secret, other), 401},
		{"the signature without its sha256= prefix", http.MethodPost, body, strings.Replace(sign(secret, body), "sha256=", "", 1), 401},
		{"another release", http.MethodPost, other, sign(secret, other), 400},
		{"not JSON", http.MethodPost, []byte("release=1.5"), sign(secret, []byte("release=1.5")), 400},
		{"a GET", http.MethodGet, nil, sign(secret, nil), 400},
	} {
		if r := do(t, c.method, tr.TriggerURL, c.body, c.header); r.status != c.want {
			t.Errorf("%s: %d, want %d", c.name, r.status, c.want)
		}
	}
	if good, rejected := tr.Triggers(); good != 0 || rejected != 4 || tr.LastTrigger() != nil {
		t.Fatalf("%d good and %d rejected triggers, last %q; want none good, 4 rejected", good, rejected, tr.LastTrigger())
	}
	if r := do(t, http.MethodGet, file, nil); r.status != 404 {
		t.Fatalf("after bad triggers: %d, want 404", r.status)
	}

	if r := do(t, http.MethodPost, tr.TriggerURL, body, sign(secret, body)); r.status != 202 {
		t.Fatalf("a good trigger: %d, want 202", r.status)
	}
	if good, _ := tr.Triggers(); good != 1 || !bytes.Equal(tr.LastTrigger(), body) {
		t.Errorf("%d good triggers, last %q; want 1, the body sent", good, tr.LastTrigger())
	}
	// Requests outside the release do not bring the sync nearer.
	for range 3 {
		do(t, http.MethodGet, tr.URL+"/elsewhere", nil)
	}
	poll(t, file, rel.Files[setup], 404, 404, 200)
	if !tr.Has(rel, tarb) {
		t.Error("synced, but without the whole release")
	}
}

// poll GETs u once per status wanted, and wants each in turn: a 200 with
// the file's body.
func poll(t *testing.T, u string, body []byte, want ...int) {
	t.Helper()
	for i, status := range want {
		r := do(t, http.MethodGet, u, nil)
		if r.status != status || (status == 200 && !bytes.Equal(r.body, body)) {
			t.Errorf("poll %d: %d, want %d", i+1, r.status, status)
		}
	}
}

// TestPassive: a passive mirror holds the release once it has been asked
// for release files syncAfter times, and not before.
func TestPassive(t *testing.T) {
	t.Parallel()
	rel := testRelease()
	p := started(t)(NewPassive("passive", rel, 3))
	do(t, http.MethodGet, p.URL+"/firefox/other/x", nil) // not a release file: not counted
	poll(t, fileURL(p, rel, tarb), rel.Files[tarb], 404, 404, 404, 200, 200)
	if !p.Has(rel, setup) {
		t.Error("synced, but without the whole release")
	}
}

// TestHandlersAndObservers: the handler added last is asked first, one
// declining falls through to the next and to the files; observers see
// every request, their done once it is answered, and the counts follow:
// requests, the most in flight at once, the user agents.
func TestHandlersAndObservers(t *testing.T) {
	t.Parallel()
	rel := testRelease()
	s := started(t)(NewStatic("handlers", rel))
	answer := func(path, text string) func(http.ResponseWriter, *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != path {
				return false
			}
			io.WriteString(w, text)
			return true
		}
	}
	s.HandleFunc(answer("/pub/a", "first"))
	s.HandleFunc(answer("/pub/a", "second"))
	s.HandleFunc(answer("/pub/b", "b"))

	const n = 3
	arrived, done := make(chan struct{}, n), make(chan struct{}, n)
	release := make(chan struct{})
	s.Observe(func(r *http.Request) func() {
		if r.URL.Path != "/pub/a" {
			return nil
		}
		arrived <- struct{}{}
		<-release
		return func() { done <- struct{}{} }
	})
	var wg sync.WaitGroup
	texts := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/a", nil)
			req.Header.Set("User-Agent", fmt.Sprintf("agent-%d", i%2))
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			texts[i] = string(b)
		}()
	}
	for range n {
		<-arrived // all n in flight at once
	}
	close(release)
	wg.Wait()
	for range n {
		<-done
	}
	for i, text := range texts {
		if text != "second" {
			t.Errorf("request %d answered %q, want the handler added last", i, text)
		}
	}
	if r := do(t, http.MethodGet, s.URL+"/b", nil); string(r.body) != "b" {
		t.Errorf("/b: %q", r.body)
	}
	if r := do(t, http.MethodGet, fileURL(s, rel, setup), nil); r.status != 200 || !bytes.Equal(r.body, rel.Files[setup]) {
		t.Errorf("a file past the handlers: %d, %d bytes", r.status, len(r.body))
	}
	if st := s.Stats(); st.Requests != n+2 || st.MaxInFlight != n {
		t.Errorf("stats %+v, want %d requests, %d at most at once", st, n+2, n)
	}
	if ua := s.UserAgents(); !slices.Equal(ua, []string{"Go-http-client/1.1", "agent-0", "agent-1"}) {
		t.Errorf("user agents %q", ua)
	}
}

// TestUnavailable: every request is answered 503 with Retry-After.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	rel := testRelease()
	s := started(t)(NewStatic("busy", rel))
	Unavailable(s)
	for _, u := range []string{fileURL(s, rel, setup), s.URL + "/anything"} {
		if r := do(t, http.MethodGet, u, nil); r.status != 503 || r.header.Get("Retry-After") != "1" {
			t.Errorf("%s: %d, Retry-After %q; want 503, 1", u, r.status, r.header.Get("Retry-After"))
		}
	}
}

// TestHangingBodies: a stalled body sends its headers (the file's whole
// length) and half the file, an endless body more than any file, and
// both hang until the client goes away, when the handler returns; the
// other files are served.
func TestHangingBodies(t *testing.T) {
	t.Parallel()
	rel := testRelease()
	s := started(t)(NewStatic("hanging", rel))
	StallBody(s, rel, setup)
	EndlessBody(s, rel, tarb)
	ended := make(chan string, 2)
	s.Observe(func(r *http.Request) func() { return func() { ended <- r.URL.Path } })

	if r := do(t, http.MethodHead, fileURL(s, rel, setup), nil); r.status != 200 || r.header.Get("Content-Length") != "70000" {
		t.Errorf("HEAD of the stalled file: %d, Content-Length %q", r.status, r.header.Get("Content-Length"))
	}
	<-ended
	for _, c := range []struct {
		path string
		read int    // bytes read before the client goes away
		want []byte // what they are, when known
	}{
		{setup, 35_000, rel.Files[setup][:35_000]},
		{tarb, 4 << 20, bytes.Repeat([]byte("x"), 4<<20)},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fileURL(s, rel, c.path), nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, c.read)
		if _, err := io.ReadFull(resp.Body, got); err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: %v; want its first %d bytes", c.path, err, c.read)
		}
		cancel()
		if rest, err := io.ReadAll(resp.Body); c.path == setup && (len(rest) != 0 || err == nil) {
			t.Errorf("%s: %d more bytes, %v; want nothing more, the read cut off", c.path, len(rest), err)
		}
		resp.Body.Close()
		if p := <-ended; p != "/pub"+rel.Dir+c.path {
			t.Errorf("ended %s, want %s", p, c.path)
		}
	}
	if r := do(t, http.MethodGet, s.URL+"/other", nil); r.status != 404 {
		t.Errorf("another path: %d, want 404", r.status)
	}
}

// TestDeadURL: nothing answers there.
func TestDeadURL(t *testing.T) {
	t.Parallel()
	u, err := DeadURL()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, "http://127.0.0.1:") || !strings.HasSuffix(u, "/pub") {
		t.Errorf("%q, want http://127.0.0.1:PORT/pub", u)
	}
	if _, err := client.Get(u + "/x"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("GET: %v, want connection refused", err)
	}
}

// TestFlipAndContent: Flip changes one byte, at the middle, of a copy;
// Content is the same for the same name and length, and differs by name.
func TestFlipAndContent(t *testing.T) {
	t.Parallel()
	b := Content("a", 1001)
	if len(b) != 1001 || !bytes.Equal(b, Content("a", 1001)) || !bytes.Equal(Content("a", 10), b[:10]) {
		t.Error("Content is not the same for the same name")
	}
	if bytes.Equal(Content("b", 1001), b) {
		t.Error("Content is the same for two names")
	}
	f := Flip(b)
	var diff []int
	for i := range b {
		if f[i] != b[i] {
			diff = append(diff, i)
		}
	}
	if len(f) != len(b) || !slices.Equal(diff, []int{500}) || !bytes.Equal(b, Content("a", 1001)) {
		t.Errorf("Flip changed bytes %v of %d, want byte 500 of a copy", diff, len(f))
	}
	if len(Flip(nil)) != 0 {
		t.Error("Flip of nothing")
	}
}
