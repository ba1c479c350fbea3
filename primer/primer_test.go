package primer

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"golang.org/x/sync/semaphore"
)

const testDir = "/pub/firefox/releases/1.5/"

// testFile is a release file with its content.
type testFile struct {
	File
	content []byte
}

// makeFiles returns n files whose names need escaping (space, '#'). The
// contents stay under 2000 bytes (see serveBytes).
func makeFiles(n int) []testFile {
	out := make([]testFile, n)
	for i := range out {
		c := []byte(strings.Repeat(fmt.Sprintf("file %d of the release; ", i), 40))
		sum := sha256.Sum256(c)
		out[i] = testFile{
			File: File{
				Path: fmt.Sprintf("win32/de/Firefox Setup #%02d.exe", i),
				Size: int64(len(c)),
				Algo: "sha256",
				Hash: hex.EncodeToString(sum[:]),
			},
			content: c,
		}
	}
	return out
}

func filesOf(tf []testFile) []File {
	out := make([]File, len(tf))
	for i, f := range tf {
		out[i] = f.File
	}
	return out
}

// byURLPath indexes the files by the decoded URL path a mirror sees.
func byURLPath(tf []testFile) map[string]testFile {
	m := make(map[string]testFile, len(tf))
	for _, f := range tf {
		m[testDir+f.Path] = f
	}
	return m
}

// serveBytes serves b with ranges and a Content-Length. The writer is
// wrapped to hide http.response's ReadFrom, which would flush the answer
// before the handler returns: with plain writes, a body under 2 KiB leaves
// only after the handler returned, so a server-side in-flight counter never
// outlives the client's request.
func serveBytes(w http.ResponseWriter, r *http.Request, b []byte) {
	http.ServeContent(struct{ http.ResponseWriter }{w}, r, "", time.Time{}, strings.NewReader(string(b)))
}

func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t *testing.T) *checks.Client {
	t.Helper()
	c, err := checks.NewClient(checks.ClientOptions{
		UserAgent:       "sentry/primer-test (+https://example.org/contact)",
		ConnectTimeout:  5 * time.Second,
		HeaderTimeout:   5 * time.Second,
		BodyIdleTimeout: 5 * time.Second,
		RetryWaitMin:    time.Millisecond,
		RetryWaitMax:    2 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// testConfig polls every few milliseconds with a generous deadline (a bound
// against hanging, never reached by a passing test).
func testConfig(c *checks.Client) Config {
	return Config{
		Client:       c,
		Release:      "1.5",
		ReleaseDir:   testDir,
		Deadline:     30 * time.Second,
		PollInterval: time.Millisecond,
		PollMax:      4 * time.Millisecond,
	}
}

// collector gathers outcomes from concurrent emit calls.
type collector struct {
	mu  sync.Mutex
	out []Outcome
}

func (c *collector) emit(o Outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = append(c.out, o)
}

func (c *collector) all() []Outcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.out)
}

// files returns the file outcomes by path, failing on a duplicate.
func (c *collector) files(t *testing.T) map[string]Outcome {
	t.Helper()
	m := map[string]Outcome{}
	for _, o := range c.all() {
		if o.Path == "" {
			continue
		}
		if _, dup := m[o.Path]; dup {
			t.Errorf("two outcomes for %q", o.Path)
		}
		m[o.Path] = o
	}
	return m
}

// inflight tracks requests in flight and the maximum seen.
type inflight struct{ cur, max atomic.Int32 }

func (f *inflight) enter() {
	n := f.cur.Add(1)
	for {
		m := f.max.Load()
		if n <= m || f.max.CompareAndSwap(m, n) {
			return
		}
	}
}

func (f *inflight) leave() { f.cur.Add(-1) }

func TestPull(t *testing.T) {
	tf := makeFiles(6)
	type want struct {
		kind     checks.Kind
		cache    string // substring of Result.CacheStatus
		detail   string // substring of Result.Detail
		notCache string // must not appear in CacheStatus
	}
	tests := []struct {
		name string
		// serve answers for one file; i is its index, cached whether an
		// earlier GET went through.
		serve func(w http.ResponseWriter, r *http.Request, i int, cached bool)
		want  func(i int) want
	}{
		{
			name: "every file right, cache status after",
			serve: func(w http.ResponseWriter, r *http.Request, i int, cached bool) {
				if cached {
					w.Header().Set("X-Cache-Status", "HIT")
				} else {
					w.Header().Set("X-Cache-Status", "MISS")
				}
				serveBytes(w, r, tf[i].content)
			},
			want: func(int) want {
				return want{kind: checks.KindOK, cache: "X-Cache-Status: MISS; after: X-Cache-Status: HIT"}
			},
		},
		{
			name: "one 404 and one flipped byte",
			serve: func(w http.ResponseWriter, r *http.Request, i int, cached bool) {
				switch i {
				case 2:
					http.NotFound(w, r)
				case 4:
					b := slices.Clone(tf[i].content)
					b[len(b)/2] ^= 0x01
					serveBytes(w, r, b)
				default:
					serveBytes(w, r, tf[i].content)
				}
			},
			want: func(i int) want {
				switch i {
				case 2:
					return want{kind: checks.KindNotFound, notCache: "after:"}
				case 4:
					return want{kind: checks.KindChecksumMismatch, notCache: "after:"}
				}
				return want{kind: checks.KindOK, cache: "after: no cache headers"}
			},
		},
		{
			name: "follow-up HEAD fails: still OK, noted",
			serve: func(w http.ResponseWriter, r *http.Request, i int, cached bool) {
				if r.Method == http.MethodHead {
					http.Error(w, "no HEAD here", http.StatusForbidden)
					return
				}
				serveBytes(w, r, tf[i].content)
			},
			want: func(int) want {
				return want{kind: checks.KindOK, detail: "follow-up HEAD failed: forbidden", notCache: "after:"}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idx := map[string]int{}
			for i, f := range tf {
				idx[testDir+f.Path] = i
			}
			var mu sync.Mutex
			methods := map[string][]string{} // path → methods, in order
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				i, ok := idx[r.URL.Path]
				if !ok {
					t.Errorf("unexpected request %s %q", r.Method, r.URL.Path)
					http.NotFound(w, r)
					return
				}
				mu.Lock()
				cached := slices.Contains(methods[r.URL.Path], http.MethodGet)
				methods[r.URL.Path] = append(methods[r.URL.Path], r.Method)
				mu.Unlock()
				tc.serve(w, r, i, cached)
			})
			var col collector
			m := Mirror{ID: 1, Name: "cache", BaseURL: srv.URL, Mode: ModePull, Concurrency: 2}
			if err := Prime(context.Background(), testConfig(newClient(t)), m, filesOf(tf), col.emit); err != nil {
				t.Fatalf("Prime: %v", err)
			}
			got := col.files(t)
			if n := len(col.all()); n != len(tf) {
				t.Fatalf("%d outcomes, want %d", n, len(tf))
			}
			for i, f := range tf {
				o, ok := got[f.Path]
				if !ok {
					t.Errorf("no outcome for %q", f.Path)
					continue
				}
				w := tc.want(i)
				if o.Method != MethodGet || o.Result.Kind != w.kind {
					t.Errorf("%s: %s %s (%s), want GET %s", f.Path, o.Method, o.Result.Kind, o.Result.Detail, w.kind)
				}
				if o.CheckedAt.IsZero() {
					t.Errorf("%s: CheckedAt not set", f.Path)
				}
				if !strings.Contains(o.Result.CacheStatus, w.cache) {
					t.Errorf("%s: CacheStatus %q, want it to contain %q", f.Path, o.Result.CacheStatus, w.cache)
				}
				if w.notCache != "" && strings.Contains(o.Result.CacheStatus, w.notCache) {
					t.Errorf("%s: CacheStatus %q contains %q", f.Path, o.Result.CacheStatus, w.notCache)
				}
				if !strings.Contains(o.Result.Detail, w.detail) {
					t.Errorf("%s: Detail %q, want it to contain %q", f.Path, o.Result.Detail, w.detail)
				}
				if w.kind == checks.KindOK && !o.Result.Hashed {
					t.Errorf("%s: OK but not hashed", f.Path)
				}
				// A GET first; a HEAD follows only an OK verify.
				wantMethods := []string{http.MethodGet}
				if w.kind == checks.KindOK {
					wantMethods = append(wantMethods, http.MethodHead)
				}
				mu.Lock()
				if got := methods[testDir+f.Path]; !slices.Equal(got, wantMethods) {
					t.Errorf("%s: requests %v, want %v", f.Path, got, wantMethods)
				}
				mu.Unlock()
			}
		})
	}
}

// triggerServer is a trigger mirror: POST /trigger with a valid signature
// starts the sync, and the files are served once the first file has been
// polled twice more after the trigger (two poll rounds).
type triggerServer struct {
	t         *testing.T
	secret    []byte
	files     map[string]testFile
	firstPath string
	always    bool // serve the files without a trigger

	triggered   atomic.Bool
	available   atomic.Bool
	headsAfter  atomic.Int32
	posts       atomic.Int32
	earlyGet    atomic.Bool
	triggerBody atomic.Pointer[triggerBody]
}

func (s *triggerServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/trigger" {
		s.trigger(w, r)
		return
	}
	f, ok := s.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if !s.always && r.Method == http.MethodHead && s.triggered.Load() && r.URL.Path == s.firstPath {
		if s.headsAfter.Add(1) > 2 {
			s.available.Store(true)
		}
	}
	if !s.always && !s.available.Load() {
		if r.Method == http.MethodGet {
			s.earlyGet.Store(true)
		}
		http.NotFound(w, r)
		return
	}
	serveBytes(w, r, f.content)
}

func (s *triggerServer) trigger(w http.ResponseWriter, r *http.Request) {
	s.posts.Add(1)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		s.t.Errorf("trigger: %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	sig, ok := strings.CutPrefix(r.Header.Get("X-Sentry-Signature"), "sha256=")
	got, err := hex.DecodeString(sig)
	mac := hmac.New(sha256.New, s.secret)
	mac.Write(body)
	if !ok || err != nil || !hmac.Equal(got, mac.Sum(nil)) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var tb triggerBody
	if err := json.Unmarshal(body, &tb); err != nil {
		s.t.Errorf("trigger body %q: %v", body, err)
	}
	s.triggerBody.Store(&tb)
	s.triggered.Store(true)
	w.WriteHeader(http.StatusAccepted)
}

func TestTrigger(t *testing.T) {
	tf := makeFiles(4)
	tests := []struct {
		name         string
		clientSecret string
		serverSecret string
		noURL        bool
		always       bool // the mirror syncs on its own
		deadline     time.Duration
		wantPost     checks.Kind
		wantPostErr  error
		wantFiles    checks.Kind
		wantMethod   string
	}{
		{
			name: "signed trigger, files after two rounds", clientSecret: "s3cret", serverSecret: "s3cret",
			deadline: 30 * time.Second, wantPost: checks.KindOK, wantFiles: checks.KindOK, wantMethod: MethodGet,
		},
		{
			name: "wrong signature rejected, never synced", clientSecret: "wrong", serverSecret: "s3cret",
			deadline: 30 * time.Millisecond, wantPost: checks.KindForbidden, wantFiles: checks.KindNotPrimed, wantMethod: MethodPoll,
		},
		{
			name: "no secret configured, mirror syncs anyway", clientSecret: "", serverSecret: "s3cret", always: true,
			deadline: 30 * time.Second, wantPost: checks.KindInternal, wantPostErr: ErrTriggerConfig,
			wantFiles: checks.KindOK, wantMethod: MethodGet,
		},
		{
			name: "no trigger URL, never synced", clientSecret: "s3cret", serverSecret: "s3cret", noURL: true,
			deadline: 30 * time.Millisecond, wantPost: checks.KindInternal, wantPostErr: ErrTriggerConfig,
			wantFiles: checks.KindNotPrimed, wantMethod: MethodPoll,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &triggerServer{t: t, secret: []byte(tc.serverSecret), files: byURLPath(tf),
				firstPath: testDir + tf[0].Path, always: tc.always}
			srv := newServer(t, s.ServeHTTP)
			cfg := testConfig(newClient(t))
			cfg.Deadline = tc.deadline
			cfg.TriggerSecret = []byte(tc.clientSecret)
			m := Mirror{ID: 2, Name: "trig", BaseURL: srv.URL, Mode: ModeTrigger, TriggerURL: srv.URL + "/trigger", Concurrency: 2}
			if tc.noURL {
				m.TriggerURL = ""
			}
			var col collector
			if err := Prime(context.Background(), cfg, m, filesOf(tf), col.emit); err != nil {
				t.Fatalf("Prime: %v", err)
			}
			all := col.all()
			if len(all) != len(tf)+1 {
				t.Fatalf("%d outcomes, want %d", len(all), len(tf)+1)
			}
			post := all[0]
			if post.Path != "" || post.Method != MethodPost || post.Result.Kind != tc.wantPost {
				t.Fatalf("first outcome %q %s %s (%s), want the POST: %s",
					post.Path, post.Method, post.Result.Kind, post.Result.Detail, tc.wantPost)
			}
			if tc.wantPostErr != nil && !errors.Is(post.Result.Err, tc.wantPostErr) {
				t.Errorf("POST Err %v, want %v", post.Result.Err, tc.wantPostErr)
			}
			if tc.wantPost == checks.KindInternal && s.posts.Load() != 0 {
				t.Errorf("a misconfigured trigger was sent anyway")
			}
			got := col.files(t)
			for _, f := range tf {
				o := got[f.Path]
				if o.Result.Kind != tc.wantFiles || o.Method != tc.wantMethod {
					t.Errorf("%s: %s %s (%s), want %s %s", f.Path, o.Method, o.Result.Kind, o.Result.Detail, tc.wantMethod, tc.wantFiles)
				}
			}
			if tc.wantPost == checks.KindOK {
				if n := s.headsAfter.Load(); n < 3 {
					t.Errorf("first file polled %d times after the trigger, want >= 3", n)
				}
				tb := s.triggerBody.Load()
				if tb == nil || tb.Release != "1.5" || len(tb.Files) != len(tf) || tb.Files[0] != tf[0].Path {
					t.Errorf("trigger body %+v", tb)
				}
			}
			if s.earlyGet.Load() {
				t.Errorf("a file was fetched (GET) before the mirror had it")
			}
		})
	}
}

func TestPassive(t *testing.T) {
	tf := makeFiles(5)
	idx := map[string]int{}
	for i, f := range tf {
		idx[testDir+f.Path] = i
	}
	files := filesOf(tf)
	neg := slices.Clone(files)
	neg[3].Size = -5 // sentry's own data is wrong

	tests := []struct {
		name  string
		files []File
		// serve answers for file i; heads is the number of HEADs the
		// mirror has seen so far, this one included (0 for a GET).
		serve    func(w http.ResponseWriter, r *http.Request, i int, heads int32)
		deadline time.Duration
		want     func(i int) (checks.Kind, string) // kind and method
		detail   func(i int) string
	}{
		{
			name:  "files appear after some rounds, one still syncing first",
			files: files,
			serve: func(w http.ResponseWriter, r *http.Request, i int, heads int32) {
				if r.Method == http.MethodHead && heads < int32(3*(i+1)) {
					if i == 1 && heads > 1 {
						// Present but partial: still syncing.
						w.Header().Set("Content-Length", "10")
						w.WriteHeader(http.StatusOK)
						return
					}
					http.NotFound(w, r)
					return
				}
				serveBytes(w, r, tf[i].content)
			},
			deadline: 30 * time.Second,
			want:     func(int) (checks.Kind, string) { return checks.KindOK, MethodGet },
		},
		{
			name:  "verify result is final: a corrupt file",
			files: files,
			serve: func(w http.ResponseWriter, r *http.Request, i int, heads int32) {
				b := tf[i].content
				if i == 0 {
					b = slices.Clone(b)
					b[0] ^= 0xff
				}
				serveBytes(w, r, b)
			},
			deadline: 30 * time.Second,
			want: func(i int) (checks.Kind, string) {
				if i == 0 {
					return checks.KindChecksumMismatch, MethodGet
				}
				return checks.KindOK, MethodGet
			},
		},
		{
			name:  "never synced: not_primed at the deadline",
			files: files,
			serve: func(w http.ResponseWriter, r *http.Request, i int, heads int32) {
				http.NotFound(w, r)
			},
			deadline: 30 * time.Millisecond,
			want:     func(int) (checks.Kind, string) { return checks.KindNotPrimed, MethodPoll },
			detail:   func(int) string { return "not present after 30ms (" },
		},
		{
			name:  "never complete: last answer is the size mismatch",
			files: files,
			serve: func(w http.ResponseWriter, r *http.Request, i int, heads int32) {
				w.Header().Set("Content-Length", "10")
				w.WriteHeader(http.StatusOK)
			},
			deadline: 30 * time.Millisecond,
			want:     func(int) (checks.Kind, string) { return checks.KindNotPrimed, MethodPoll },
			detail: func(i int) string {
				return fmt.Sprintf("last answer: size_mismatch 200 (Content-Length 10, want %d)", tf[i].Size)
			},
		},
		{
			name:  "an invalid file is final at once",
			files: neg,
			serve: func(w http.ResponseWriter, r *http.Request, i int, heads int32) {
				serveBytes(w, r, tf[i].content)
			},
			deadline: 30 * time.Second,
			want: func(i int) (checks.Kind, string) {
				if i == 3 {
					return checks.KindInternal, MethodHead
				}
				return checks.KindOK, MethodGet
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var heads atomic.Int32
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				i, ok := idx[r.URL.Path]
				if !ok {
					t.Errorf("unexpected request %s %q", r.Method, r.URL.Path)
					http.NotFound(w, r)
					return
				}
				var h int32
				if r.Method == http.MethodHead {
					h = heads.Add(1)
				}
				tc.serve(w, r, i, h)
			})
			cfg := testConfig(newClient(t))
			cfg.Deadline = tc.deadline
			m := Mirror{ID: 3, Name: "rsync", BaseURL: srv.URL, Mode: ModePassive, Concurrency: 2}
			var col collector
			if err := Prime(context.Background(), cfg, m, tc.files, col.emit); err != nil {
				t.Fatalf("Prime: %v", err)
			}
			if n := len(col.all()); n != len(tf) {
				t.Fatalf("%d outcomes, want %d", n, len(tf))
			}
			got := col.files(t)
			for i, f := range tf {
				o := got[f.Path]
				kind, method := tc.want(i)
				if o.Result.Kind != kind || o.Method != method {
					t.Errorf("%s: %s %s (%s), want %s %s", f.Path, o.Method, o.Result.Kind, o.Result.Detail, method, kind)
				}
				if tc.detail != nil && !strings.Contains(o.Result.Detail, tc.detail(i)) {
					t.Errorf("%s: Detail %q, want it to contain %q", f.Path, o.Result.Detail, tc.detail(i))
				}
				if kind == checks.KindNotPrimed {
					if !errors.Is(o.Result.Err, ErrNotPrimed) {
						t.Errorf("%s: Err %v, want ErrNotPrimed", f.Path, o.Result.Err)
					}
					if o.Result.Attempts < 1 || !strings.Contains(o.Result.Detail, "last answer: ") ||
						strings.Contains(o.Result.Detail, "last answer: none") {
						t.Errorf("%s: not polled before not_primed: %d polls, %q", f.Path, o.Result.Attempts, o.Result.Detail)
					}
				}
			}
		})
	}
}

func TestPassiveNotPrimedDetail(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	cfg := testConfig(newClient(t))
	cfg.Deadline = 20 * time.Millisecond
	tf := makeFiles(1)
	var col collector
	m := Mirror{Name: "slow", BaseURL: srv.URL, Mode: ModePassive, Concurrency: 1}
	if err := Prime(context.Background(), cfg, m, filesOf(tf), col.emit); err != nil {
		t.Fatalf("Prime: %v", err)
	}
	all := col.all()
	if len(all) != 1 {
		t.Fatalf("%d outcomes, want 1", len(all))
	}
	r := all[0].Result
	if r.Kind != checks.KindNotPrimed || r.Status != http.StatusNotFound ||
		!strings.HasPrefix(r.Detail, "not present after 20ms (") ||
		!strings.HasSuffix(r.Detail, "); last answer: not_found 404") {
		t.Errorf("got %s %d %q", r.Kind, r.Status, r.Detail)
	}
	if !strings.Contains(r.FinalURL, "Firefox%20Setup%20%2300.exe") {
		t.Errorf("FinalURL %q", r.FinalURL)
	}
}

// TestPassiveEarlyStop: while the mirror has none of the files, a round
// polls only the first Concurrency files.
func TestPassiveEarlyStop(t *testing.T) {
	tf := makeFiles(10)
	var (
		mu    sync.Mutex
		paths []string
	)
	enough := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		if len(paths) == 6 {
			close(enough)
		}
		mu.Unlock()
		http.NotFound(w, r)
	})
	cfg := testConfig(newClient(t))
	cfg.Deadline = time.Hour
	cfg.PollMax = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-enough
		cancel()
	}()
	var col collector
	m := Mirror{Name: "idle", BaseURL: srv.URL, Mode: ModePassive, Concurrency: 2}
	err := Prime(ctx, cfg, m, filesOf(tf), col.emit)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Prime: %v, want context.Canceled", err)
	}
	if n := len(col.all()); n != 0 {
		t.Errorf("%d outcomes, want none", n)
	}
	mu.Lock()
	defer mu.Unlock()
	// Each round probes only Concurrency files, and the next round samples
	// the next ones: rounds are cut short, and rotate.
	for i, p := range paths[:6] {
		want := testDir + tf[i/2*2].Path
		alt := testDir + tf[i/2*2+1].Path
		if p != want && p != alt {
			t.Errorf("request %d polled %q, want %q or %q", i, p, want, alt)
		}
	}
}

// TestPassiveFindsFilesSyncedOutOfOrder: a mirror holding every file but
// the first ones of the manifest is found by the rotating sample within a
// few rounds, not at the deadline.
func TestPassiveFindsFilesSyncedOutOfOrder(t *testing.T) {
	tf := makeFiles(8)
	byPath := byURLPath(tf)
	var firstPolls atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case testDir + tf[0].Path, testDir + tf[1].Path:
			firstPolls.Add(1)
			http.NotFound(w, r)
		default:
			serveBytes(w, r, byPath[r.URL.Path].content)
		}
	})
	cfg := testConfig(newClient(t))
	// Without the rotation the present files are found only in the final
	// round: then the absent ones have been polled hundreds of times.
	cfg.Deadline = 3 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var col collector
	var verified atomic.Int32
	var pollsAtLast int32
	emit := func(o Outcome) {
		col.emit(o)
		if o.Result.Kind == checks.KindOK && verified.Add(1) == 6 {
			pollsAtLast = firstPolls.Load()
			cancel() // the two absent files would wait for the deadline
		}
	}
	m := Mirror{Name: "out-of-order", BaseURL: srv.URL, Mode: ModePassive, Concurrency: 2}
	if err := Prime(ctx, cfg, m, filesOf(tf), emit); !errors.Is(err, context.Canceled) {
		t.Fatalf("Prime: %v", err)
	}
	if verified.Load() != 6 {
		t.Fatalf("%d files verified, want 6", verified.Load())
	}
	// Round 1 samples the two absent files and stops; round 2 samples
	// others, finds them, and polls everything.
	if pollsAtLast > 4 {
		t.Errorf("the absent first files were polled %d times before the present ones were found", pollsAtLast)
	}
}

// barrier lets the first n requests through only once all n have arrived,
// so that the test knows the client really had n in flight. guard bounds the
// wait: a primer that never reaches n fails instead of hanging.
type barrier struct {
	n       int32
	arrived atomic.Int32
	open    chan struct{}
	failed  atomic.Bool
}

func newBarrier(n int32) *barrier { return &barrier{n: n, open: make(chan struct{})} }

func (b *barrier) wait() {
	k := b.arrived.Add(1)
	if k == b.n {
		close(b.open)
	}
	if k > b.n {
		return
	}
	select {
	case <-b.open:
	case <-time.After(10 * time.Second):
		b.failed.Store(true)
	}
}

func TestPerMirrorConcurrency(t *testing.T) {
	for _, mode := range []Mode{ModePull, ModePassive, ModeTrigger} {
		t.Run(string(mode), func(t *testing.T) {
			tf := makeFiles(30)
			files := byURLPath(tf)
			var fl inflight
			b := newBarrier(3)
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				fl.enter()
				defer fl.leave()
				if r.URL.Path == "/trigger" {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				b.wait()
				f, ok := files[r.URL.Path]
				if !ok {
					http.NotFound(w, r)
					return
				}
				serveBytes(w, r, f.content)
			})
			cfg := testConfig(newClient(t))
			cfg.TriggerSecret = []byte("k")
			m := Mirror{Name: "capped", BaseURL: srv.URL, Mode: mode, TriggerURL: srv.URL + "/trigger", Concurrency: 3}
			var col collector
			if err := Prime(context.Background(), cfg, m, filesOf(tf), col.emit); err != nil {
				t.Fatalf("Prime: %v", err)
			}
			if b.failed.Load() {
				t.Errorf("the mirror never had 3 requests in flight")
			}
			if mx := fl.max.Load(); mx > 3 || mx < 1 {
				t.Errorf("max in flight %d, want 1..3", mx)
			}
			for p, o := range col.files(t) {
				if o.Result.Kind != checks.KindOK {
					t.Errorf("%s: %s (%s)", p, o.Result.Kind, o.Result.Detail)
				}
			}
			if n := len(col.files(t)); n != len(tf) {
				t.Errorf("%d file outcomes, want %d", n, len(tf))
			}
		})
	}
}

func TestGlobalSemaphore(t *testing.T) {
	tf := makeFiles(10)
	files := byURLPath(tf)
	var fl inflight
	h := func(w http.ResponseWriter, r *http.Request) {
		fl.enter()
		defer fl.leave()
		f, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		serveBytes(w, r, f.content)
	}
	srvA, srvB := newServer(t, h), newServer(t, h)
	global := semaphore.NewWeighted(1)
	cfg := testConfig(newClient(t))
	cfg.Global = global
	mirrors := []Mirror{
		{ID: 1, Name: "a", BaseURL: srvA.URL, Mode: ModePull, Concurrency: 4},
		{ID: 2, Name: "b", BaseURL: srvB.URL, Mode: ModePassive, Concurrency: 4},
	}
	var col collector
	var wg sync.WaitGroup
	errs := make([]error, len(mirrors))
	for i, m := range mirrors {
		wg.Go(func() { errs[i] = Prime(context.Background(), cfg, m, filesOf(tf), col.emit) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Prime %s: %v", mirrors[i].Name, err)
		}
	}
	if mx := fl.max.Load(); mx != 1 {
		t.Errorf("max in flight over both mirrors %d, want 1", mx)
	}
	all := col.all()
	if len(all) != 2*len(tf) {
		t.Errorf("%d outcomes, want %d", len(all), 2*len(tf))
	}
	for _, o := range all {
		if o.Result.Kind != checks.KindOK {
			t.Errorf("%s: %s (%s)", o.Path, o.Result.Kind, o.Result.Detail)
		}
	}
	if !global.TryAcquire(1) {
		t.Errorf("the global semaphore was not released")
	}
}

func TestCancel(t *testing.T) {
	for _, mode := range []Mode{ModePull, ModePassive, ModeTrigger} {
		t.Run(string(mode), func(t *testing.T) {
			tf := makeFiles(10)
			arrived := make(chan struct{})
			var once sync.Once
			stop := make(chan struct{})
			release := sync.OnceFunc(func() { close(stop) })
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				once.Do(func() { close(arrived) })
				// Hold every request until the client gives up.
				select {
				case <-r.Context().Done():
				case <-stop:
				}
			})
			t.Cleanup(release)
			cfg := testConfig(newClient(t))
			cfg.TriggerSecret = []byte("k")
			cfg.Deadline = time.Hour
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				<-arrived
				cancel()
			}()
			var returned, late atomic.Bool
			var col collector
			emit := func(o Outcome) {
				if returned.Load() {
					late.Store(true)
				}
				col.emit(o)
			}
			m := Mirror{Name: "cut", BaseURL: srv.URL, Mode: mode, TriggerURL: srv.URL + "/trigger", Concurrency: 3}
			err := Prime(ctx, cfg, m, filesOf(tf), emit)
			returned.Store(true)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Prime: %v, want context.Canceled", err)
			}
			if n := len(col.all()); n != 0 {
				t.Errorf("%d outcomes emitted for cancelled requests: %+v", n, col.all())
			}
			release()
			srv.Close() // wait for the handlers; a leaked goroutine would emit by now
			if late.Load() {
				t.Errorf("emit called after Prime returned")
			}
		})
	}
}

// TestCancelDuringWait: a cancellation between poll rounds ends the wait.
func TestCancelDuringWait(t *testing.T) {
	tf := makeFiles(2)
	var heads atomic.Int32
	polled := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if heads.Add(1) == 2 {
			close(polled)
		}
		http.NotFound(w, r)
	})
	cfg := testConfig(newClient(t))
	cfg.Deadline = time.Hour
	cfg.PollInterval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-polled
		cancel()
	}()
	var col collector
	m := Mirror{Name: "wait", BaseURL: srv.URL, Mode: ModePassive, Concurrency: 2}
	if err := Prime(ctx, cfg, m, filesOf(tf), col.emit); !errors.Is(err, context.Canceled) {
		t.Fatalf("Prime: %v, want context.Canceled", err)
	}
	if n := heads.Load(); n != 2 {
		t.Errorf("%d HEADs, want exactly one round of 2", n)
	}
}

func TestPrimeRefuses(t *testing.T) {
	c := newClient(t)
	ok := testConfig(c)
	var col collector
	tests := []struct {
		name string
		cfg  Config
		m    Mirror
		emit func(Outcome)
		want error
	}{
		{"nil client", Config{}, Mirror{Mode: ModePull}, col.emit, ErrInvalidConfig},
		{"negative deadline", Config{Client: c, Deadline: -1}, Mirror{Mode: ModePull}, col.emit, ErrInvalidConfig},
		{"negative poll", Config{Client: c, PollInterval: -1}, Mirror{Mode: ModePull}, col.emit, ErrInvalidConfig},
		{"negative fill wait", Config{Client: c, FillWait: -1}, Mirror{Mode: ModePull}, col.emit, ErrInvalidConfig},
		{"negative fill tries", Config{Client: c, FillTries: -1}, Mirror{Mode: ModePull}, col.emit, ErrInvalidConfig},
		{"nil emit", ok, Mirror{Mode: ModePull}, nil, ErrInvalidConfig},
		{"unknown mode", ok, Mirror{Mode: "rsync"}, col.emit, ErrUnknownMode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Prime(context.Background(), tc.cfg, tc.m, filesOf(makeFiles(1)), tc.emit)
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if n := len(col.all()); n != 0 {
		t.Errorf("%d outcomes from refused calls", n)
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in   string
		want Mode
		err  bool
	}{
		{"", ModePull, false},
		{"pull", ModePull, false},
		{"trigger", ModeTrigger, false},
		{"passive", ModePassive, false},
		{"Pull", "", true},
		{"rsync", "", true},
	}
	for _, tc := range tests {
		got, err := ParseMode(tc.in)
		if got != tc.want || (err != nil) != tc.err || (err != nil && !errors.Is(err, ErrUnknownMode)) {
			t.Errorf("ParseMode(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestFileURL(t *testing.T) {
	tests := []struct {
		base, dir, path, want string
	}{
		{"https://m.example.org/pub", "/firefox/releases/1.5/", "win32/de/Firefox Setup 1.5.exe",
			"https://m.example.org/pub/firefox/releases/1.5/win32/de/Firefox%20Setup%201.5.exe"},
		{"https://m.example.org/pub/", "firefox/releases/1.5", "/a#b?c.exe",
			"https://m.example.org/pub/firefox/releases/1.5/a%23b%3Fc.exe"},
		{"http://m", "/r/", "100%.txt", "http://m/r/100%25.txt"},
		{"http://m", "/r/", "fr/Übersicht ñ.exe", "http://m/r/fr/%C3%9Cbersicht%20%C3%B1.exe"},
		{"http://m", "/r/", "a;b=c&d+e.exe", "http://m/r/a%3Bb=c&d+e.exe"},
		{"http://m", "/r/", `back\slash.exe`, "http://m/r/back%5Cslash.exe"},
		{"http://m", "", "x.exe", "http://m/x.exe"},
	}
	for _, tc := range tests {
		got := FileURL(tc.base, tc.dir, tc.path)
		if got != tc.want {
			t.Errorf("FileURL(%q, %q, %q) = %q, want %q", tc.base, tc.dir, tc.path, got, tc.want)
		}
		// The path must come back intact, segment by segment.
		req, err := http.NewRequest(http.MethodGet, got, nil)
		if err != nil {
			t.Errorf("%q does not parse: %v", got, err)
			continue
		}
		wantPath := "/" + strings.Trim(tc.dir, "/") + "/" + strings.TrimPrefix(tc.path, "/")
		wantPath = strings.ReplaceAll(wantPath, "//", "/")
		if !strings.HasSuffix(req.URL.Path, wantPath) || req.URL.RawQuery != "" || req.URL.Fragment != "" {
			t.Errorf("%q parses to path %q query %q fragment %q, want path ending %q",
				got, req.URL.Path, req.URL.RawQuery, req.URL.Fragment, wantPath)
		}
	}
}

func TestSign(t *testing.T) {
	// RFC 4231, test case 2.
	if got, want := Sign([]byte("Jefe"), []byte("what do ya want for nothing?")),
		"sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"; got != want {
		t.Errorf("RFC 4231 vector: got %s, want %s", got, want)
	}
	secret := []byte("trigger-secret")
	body := TriggerBody("1.5", filesOf(makeFiles(2)))
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if got := Sign(secret, body); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	if Sign([]byte("other"), body) == want {
		t.Errorf("a different secret gave the same signature")
	}
}

func TestTriggerBody(t *testing.T) {
	tests := []struct {
		release string
		files   []File
		want    string
	}{
		{"1.5", []File{{Path: "win32/de/Firefox Setup 1.5.exe"}, {Path: "mac/de/Firefox 1.5.dmg"}},
			`{"release":"1.5","files":["win32/de/Firefox Setup 1.5.exe","mac/de/Firefox 1.5.dmg"]}`},
		{"2.0", nil, `{"release":"2.0","files":[]}`},
		{`a"b`, []File{{Path: "<x>"}}, `{"release":"a\"b","files":["\u003cx\u003e"]}`},
	}
	for _, tc := range tests {
		if got := string(TriggerBody(tc.release, tc.files)); got != tc.want {
			t.Errorf("TriggerBody(%q) = %s, want %s", tc.release, got, tc.want)
		}
	}
}
