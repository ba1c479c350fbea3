package primer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/checks"
)

// Sampled files: 16 KiB in blocks of 1 KiB, 4 blocks read per check.
const (
	rangeBlock  = 1 << 10
	rangeSample = 4
)

// sampledFiles returns n files of 16 KiB with the digests of their
// blocks, as the master would give them.
func sampledFiles(t *testing.T, n int) []testFile {
	t.Helper()
	out := make([]testFile, n)
	for i := range out {
		var b bytes.Buffer
		for b.Len() < 16<<10 {
			fmt.Fprintf(&b, "file %d, line %d of the release. ", i, b.Len())
		}
		c := b.Bytes()[:16<<10]
		sum := sha256.Sum256(c)
		f := File{Path: fmt.Sprintf("linux/de/firefox-%02d.tar.bz2", i), Size: int64(len(c)), Algo: "sha256", Hash: hex.EncodeToString(sum[:])}
		master := newServer(t, func(w http.ResponseWriter, r *http.Request) { serveBytes(w, r, c) })
		blocks, res := checks.Digest(t.Context(), newClient(t), checks.Target{URL: master.URL, Size: f.Size, Algo: f.Algo, Hash: f.Hash}, rangeBlock)
		if res.Kind != checks.KindOK {
			t.Fatalf("digest: %+v", res)
		}
		f.Blocks = blocks
		out[i] = testFile{File: f, content: c}
	}
	return out
}

// fakeCache is a pull-through cache of files (its upstream is in memory)
// that behaves as one kind of cache does with ranges.
type fakeCache struct {
	files map[string]testFile
	// fillsOnRange: a range of a file not held fetches and keeps the
	// whole file (nginx proxy_cache); otherwise the range is passed
	// upstream and nothing is kept (Squid's default range_offset_limit).
	fillsOnRange bool
	// silent: no cache headers at all.
	silent bool
	// filling: how many requests after the one that made it fetch a file
	// still say MISS (Squid with range_offset_limit -1 says MISS until
	// the file is in).
	filling int

	mu       sync.Mutex
	held     map[string]bool
	after    map[string]int // requests of a held file since it was fetched
	fetched  atomic.Int64   // bytes fetched from the upstream
	served   atomic.Int64   // body bytes sent to sentry
	requests atomic.Int64
}

func newFakeCache(tf []testFile, fillsOnRange, silent bool) *fakeCache {
	return &fakeCache{files: byURLPath(tf), fillsOnRange: fillsOnRange, silent: silent, held: map[string]bool{}, after: map[string]int{}}
}

func (c *fakeCache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.requests.Add(1)
	f, ok := c.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	c.mu.Lock()
	held := c.held[r.URL.Path]
	whole := r.Header.Get("Range") == ""
	switch {
	case !held && (whole || c.fillsOnRange):
		c.held[r.URL.Path] = true
		c.fetched.Add(f.Size)
	case !held:
		c.fetched.Add(1) // the range alone, passed upstream
	case c.after[r.URL.Path] < c.filling:
		c.after[r.URL.Path]++
		held = false // still filling: the cache says MISS
	}
	c.mu.Unlock()
	if !c.silent {
		if held {
			w.Header().Set("X-Cache-Status", "HIT")
		} else {
			w.Header().Set("X-Cache-Status", "MISS")
		}
	}
	cw := &countingWriter{ResponseWriter: w, n: &c.served}
	http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(f.content))
}

func (c *fakeCache) holds(tf []testFile) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range tf {
		if c.held[testDir+f.Path] {
			n++
		}
	}
	return n
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

func sampledConfig(c *checks.Client) Config {
	cfg := testConfig(c)
	cfg.Sampled, cfg.Sampler, cfg.SampleBlocks, cfg.SampleID = true, checks.NewSampler([]byte("primer tests")), rangeSample, "run 1"
	cfg.FillWait = time.Millisecond
	return cfg
}

// TestPullSampledLearnsPriming: a sampled prime of a pull mirror not
// known yet learns, from the cache's own word on the requests after a
// one-byte range, whether the cache keeps what it fetched for it: a cache
// that does — at once, or once its fill completed (Squid with
// range_offset_limit -1 says MISS until then) — is primed with one byte
// per file and verified by sampling; one that does not (misses on 3
// files, none filled), or says nothing, is primed with full GETs,
// verified in full. What was learned is told once; a mirror known already
// is not tried again, and one known to fill on a range is turned to full
// GETs by repeated misses only, never by a slow fill.
func TestPullSampledLearnsPriming(t *testing.T) {
	tf := sampledFiles(t, 6)
	size := tf[0].Size
	const confirm = DefaultFillTries // requests confirming a fill that does not come
	for _, tc := range []struct {
		name         string
		fills        bool
		silent       bool
		filling      int
		known        Priming
		wantBy       Priming // what is told, "" for nothing
		why          string
		wantSampled  bool
		wantRequests int64
	}{
		{"a cache that fills on a range", true, false, 0, PrimeUnknown, PrimeByRange, "the next request was a hit", true, 12},
		{"a cache that says MISS while it fills", true, false, 2, PrimeUnknown, PrimeByRange, "a later one a hit", true, 6 * 4},
		// 3 files primed with a range, confirmations and a full GET and
		// HEAD each; the others with a full GET and HEAD.
		{"a cache that does not (Squid's default)", false, false, 0, PrimeUnknown, PrimeByGet, "3 files not filled", false, 3*(2+confirm+2) + 3*2},
		{"a cache that says nothing", true, true, 0, PrimeUnknown, PrimeByGet, "no cache headers", false, 2 + 2 + 2*5},
		{"known to fill on a range", true, false, 0, PrimeByRange, "", "", true, 12},
		{"known to fill on a range, slowly", true, false, 2, PrimeByRange, "", "", true, 6 * 4},
		{"known not to", false, false, 0, PrimeByGet, "", "", false, 12},
		{"known to fill on a range, but no longer does", false, false, 0, PrimeByRange, PrimeByGet, "although a range filled the cache before", false, 3*(2+confirm+2) + 3*2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cache := newFakeCache(tf, tc.fills, tc.silent)
			cache.filling = tc.filling
			srv := newServer(t, cache.ServeHTTP)
			cfg := sampledConfig(newClient(t))
			var told []string
			cfg.Learned = func(by Priming, why string) { told = append(told, string(by)+": "+why) }
			var col collector
			// One file at a time: what the requests count is the same at
			// every run.
			m := Mirror{ID: 7, Name: "cache", BaseURL: srv.URL, Mode: ModePull, Concurrency: 1, Priming: tc.known}
			if err := Prime(t.Context(), cfg, m, filesOf(tf), col.emit); err != nil {
				t.Fatal(err)
			}
			got := col.files(t)
			if len(got) != len(tf) {
				t.Fatalf("%d outcomes, want %d", len(got), len(tf))
			}
			sampled := 0
			for p, o := range got {
				r := o.Result
				if r.Kind != checks.KindOK || o.Method != MethodGet {
					t.Errorf("%s: %s %s (%s)", p, o.Method, r.Kind, r.Detail)
				}
				switch {
				case r.Sampled == rangeSample && r.Blocks == 16 && !r.Hashed:
					sampled++
					if !strings.Contains(r.CacheStatus, "; after: X-Cache-Status:") || !strings.Contains(r.Detail, "primed with a one-byte range") {
						t.Errorf("%s: cache status %q, detail %q", p, r.CacheStatus, r.Detail)
					}
					if tc.filling > 0 && !strings.HasSuffix(r.CacheStatus, "later: X-Cache-Status: HIT") {
						t.Errorf("%s: cache status %q, want the later hit", p, r.CacheStatus)
					}
				case r.Hashed && r.Sampled == 0:
				default:
					t.Errorf("%s: neither sampled nor hashed: %+v", p, r)
				}
			}
			switch {
			case tc.wantSampled && sampled != len(tf):
				t.Errorf("%d files sampled, want all %d", sampled, len(tf))
			case !tc.wantSampled && sampled != 0:
				t.Errorf("%d files sampled, want none (a file whose sample was a miss is primed again with a GET)", sampled)
			}
			if tc.wantBy == "" && len(told) != 0 || tc.wantBy != "" && (len(told) != 1 || !strings.HasPrefix(told[0], string(tc.wantBy)+": ") || !strings.Contains(told[0], tc.why)) {
				t.Errorf("told %q, want %s: …%s…", told, tc.wantBy, tc.why)
			}
			if n := cache.holds(tf); n != len(tf) {
				t.Errorf("the cache holds %d of %d files after the prime", n, len(tf))
			}
			if got := cache.requests.Load(); got != tc.wantRequests {
				t.Errorf("%d requests, want %d", got, tc.wantRequests)
			}
			if tc.wantSampled {
				// One byte, 4 KiB of blocks and the bytes confirming a fill
				// reach sentry per file, and the cache fetched every file
				// from upstream once.
				if s := cache.served.Load(); s > int64(len(tf))*(1+rangeSample*rangeBlock+1024+confirm) {
					t.Errorf("%d bytes served to sentry for %d files of %d", s, len(tf), size)
				}
				if f := cache.fetched.Load(); f != int64(len(tf))*size {
					t.Errorf("the cache fetched %d bytes from upstream, want %d", f, int64(len(tf))*size)
				}
			}
		})
	}
}

// TestPullSampledLearnsNothingFromOneMiss: a release with one file the
// cache did not fill teaches nothing for good: the file is primed with a
// full GET, and nothing is told (the next prime learns again).
func TestPullSampledLearnsNothingFromOneMiss(t *testing.T) {
	tf := sampledFiles(t, 1)
	cache := newFakeCache(tf, false, false)
	srv := newServer(t, cache.ServeHTTP)
	cfg := sampledConfig(newClient(t))
	var told []string
	cfg.Learned = func(by Priming, why string) { told = append(told, string(by)+": "+why) }
	var col collector
	if err := Prime(t.Context(), cfg, Mirror{ID: 7, Name: "cache", BaseURL: srv.URL, Mode: ModePull}, filesOf(tf), col.emit); err != nil {
		t.Fatal(err)
	}
	for p, o := range col.files(t) {
		if o.Result.Kind != checks.KindOK || !o.Result.Hashed {
			t.Errorf("%s: %s hashed=%v (%s); want verified in full", p, o.Result.Kind, o.Result.Hashed, o.Result.Detail)
		}
	}
	if len(told) != 0 {
		t.Errorf("told %q after one file not filled", told)
	}
	if n := cache.holds(tf); n != 1 {
		t.Error("the file is not in the cache")
	}
}

// TestPassiveSampled: a passive mirror's files, once present, are
// verified by sampling; a file without digests in full.
func TestPassiveSampled(t *testing.T) {
	tf := sampledFiles(t, 3)
	tf[2].Blocks = checks.Blocks{}
	cache := newFakeCache(tf, true, true)
	srv := newServer(t, cache.ServeHTTP)
	var col collector
	m := Mirror{ID: 8, Name: "passive", BaseURL: srv.URL, Mode: ModePassive, Concurrency: 2}
	if err := Prime(t.Context(), sampledConfig(newClient(t)), m, filesOf(tf), col.emit); err != nil {
		t.Fatal(err)
	}
	for p, o := range col.files(t) {
		r := o.Result
		full := p == tf[2].Path
		if r.Kind != checks.KindOK || (full && !r.Hashed) || (!full && (r.Sampled != rangeSample || r.Hashed)) {
			t.Errorf("%s: %s hashed=%v sampled=%d (%s)", p, r.Kind, r.Hashed, r.Sampled, r.Detail)
		}
	}
}

func TestSampledConfigNeedsASampler(t *testing.T) {
	cfg := testConfig(newClient(t))
	cfg.Sampled = true
	err := Prime(t.Context(), cfg, Mirror{Name: "x", BaseURL: "http://127.0.0.1:1/pub"}, nil, func(Outcome) {})
	if err == nil || !strings.Contains(err.Error(), "Sampler") {
		t.Errorf("sampling without a sampler: %v", err)
	}
}

// TestSampledPrimePurgesAStaleCopy: a cache learned to fill on a range
// that serves a respun file's previous version (a sample of wrong blocks)
// is purged, and the file fetched and verified in full; the other files
// stay sampled, and nothing is purged without a previous version.
func TestSampledPrimePurgesAStaleCopy(t *testing.T) {
	tf := sampledFiles(t, 3)
	stale := tf[0]
	old := bytes.Clone(stale.content)
	for i := range old {
		old[i] ^= 0x5a
	}
	oldSum := sha256.Sum256(old)
	tf[0].PreviousHash = hex.EncodeToString(oldSum[:])
	cache := newFakeCache(tf, true, false)
	var purged atomic.Bool
	var purges atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PURGE" {
			purges.Add(1)
			if r.URL.Path == testDir+stale.Path {
				purged.Store(true)
			}
			return
		}
		if r.URL.Path == testDir+stale.Path && !purged.Load() {
			w.Header().Set("X-Cache-Status", "HIT")
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(old))
			return
		}
		cache.ServeHTTP(w, r)
	})
	var col collector
	m := Mirror{ID: 9, Name: "varnish", BaseURL: srv.URL, Mode: ModePull, Concurrency: 1, Priming: PrimeByRange,
		Purge: Purge{Method: "PURGE", URL: "{url}"}}
	if err := Prime(t.Context(), sampledConfig(newClient(t)), m, filesOf(tf), col.emit); err != nil {
		t.Fatal(err)
	}
	for p, o := range col.files(t) {
		r := o.Result
		switch {
		case r.Kind != checks.KindOK:
			t.Errorf("%s: %s (%s)", p, r.Kind, r.Detail)
		case p == stale.Path && (!r.Hashed || r.Sampled != 0 || !strings.Contains(r.Detail, "purge")):
			t.Errorf("%s (stale): hashed=%v sampled=%d detail %q; want purged and verified in full", p, r.Hashed, r.Sampled, r.Detail)
		case p != stale.Path && (r.Hashed || r.Sampled != rangeSample):
			t.Errorf("%s: hashed=%v sampled=%d; want sampled", p, r.Hashed, r.Sampled)
		}
	}
	if !purged.Load() || purges.Load() != 1 {
		t.Errorf("%d purges (the stale file's: %v), want one, of the stale file", purges.Load(), purged.Load())
	}
}
