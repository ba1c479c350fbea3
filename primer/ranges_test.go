package primer

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/internal/testkit/rangeserver"
)

// rangeMirror serves tf as a server with behaviour b, counting the ranges
// of each GET (0: none).
type rangeMirror struct {
	srv    *rangeserver.Server
	mu     sync.Mutex
	ranges []int
}

func newRangeMirror(tf []testFile, b rangeserver.Behaviour) *rangeMirror {
	files := map[string][]byte{}
	for p, f := range byURLPath(tf) {
		files[p] = f.content
	}
	return &rangeMirror{srv: &rangeserver.Server{B: b, Files: files, Header: http.Header{"X-Cache": {"HIT"}}}}
}

func (m *rangeMirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		n := 0
		if v := r.Header.Get("Range"); v != "" {
			n = strings.Count(v, ",") + 1
		}
		m.mu.Lock()
		m.ranges = append(m.ranges, n)
		m.mu.Unlock()
	}
	m.srv.ServeHTTP(w, r)
}

// gets returns the ranges of each GET so far, and forgets them.
func (m *rangeMirror) gets() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.ranges
	m.ranges = nil
	return out
}

// TestSampledLearnsHowTheServerAnswersRanges: whatever a mirror's server
// does with ranges, its files are judged by their bytes, and what the
// first check learned of the server is told once and asked that way by
// every check after it: lighttpd's first N parts, N ranges per request;
// Varnish's 416 to several ranges, one per request; a server honouring no
// range, files read in full at once. A way known from an earlier prime is
// asked from the first check.
func TestSampledLearnsHowTheServerAnswersRanges(t *testing.T) {
	tf := sampledFiles(t, 4)
	for _, tc := range []struct {
		name    string
		b       rangeserver.Behaviour
		known   checks.RangeWay
		want    checks.RangeWay // told, or the zero way for nothing
		sampled bool
		after   int // the most ranges a GET asks once learned (0: none, in full)
	}{
		{"every range in one answer", rangeserver.Behaviour{}, checks.RangeWay{}, checks.RangeWay{}, true, rangeSample},
		{"the first 2 parts only (lighttpd)", rangeserver.Behaviour{MaxParts: 2}, checks.RangeWay{}, checks.RangeWay{MaxRanges: 2}, true, 2},
		{"416 to several ranges (Varnish)", rangeserver.Behaviour{RefuseMulti: true}, checks.RangeWay{}, checks.RangeWay{MaxRanges: 1}, true, 1},
		{"known: 416 to several ranges", rangeserver.Behaviour{RefuseMulti: true}, checks.RangeWay{MaxRanges: 1}, checks.RangeWay{}, true, 1},
		{"no range honoured", rangeserver.Behaviour{IgnoreRanges: true}, checks.RangeWay{}, checks.RangeWay{InFull: true}, false, 0},
		{"known: no range honoured", rangeserver.Behaviour{IgnoreRanges: true}, checks.RangeWay{InFull: true}, checks.RangeWay{}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rm := newRangeMirror(tf, tc.b)
			srv := newServer(t, rm.ServeHTTP)
			cfg := sampledConfig(newClient(t))
			var told []checks.RangeWay
			var whys []string
			cfg.LearnedRanges = func(way checks.RangeWay, why string) {
				told = append(told, way)
				whys = append(whys, why)
			}
			var col collector
			// Passive: polled, then verified one file at a time.
			m := Mirror{ID: 3, Name: "m", BaseURL: srv.URL, Mode: ModePassive, Concurrency: 1, Ranges: tc.known}
			if err := Prime(t.Context(), cfg, m, filesOf(tf[:1]), col.emit); err != nil {
				t.Fatal(err)
			}
			rm.gets()
			m.Ranges = m.Ranges.Merge(firstOr(told))
			if err := Prime(t.Context(), cfg, m, filesOf(tf[1:]), col.emit); err != nil {
				t.Fatal(err)
			}
			for p, o := range col.files(t) {
				r := o.Result
				switch {
				case r.Kind != checks.KindOK:
					t.Errorf("%s: %s (%s)", p, r.Kind, r.Detail)
				case tc.sampled && (r.Sampled != rangeSample || r.Hashed):
					t.Errorf("%s: sampled %d, hashed %v (%s); want sampled", p, r.Sampled, r.Hashed, r.Detail)
				case !tc.sampled && !r.Hashed:
					t.Errorf("%s: not verified in full (%s)", p, r.Detail)
				}
			}
			if tc.want.Known() != (len(told) == 1) || len(told) > 1 || len(told) == 1 && told[0] != tc.want {
				t.Errorf("told %+v (%q), want %+v", told, whys, tc.want)
			}
			// Once learned, every GET asks the way that works, and asks
			// no block twice.
			gets := rm.gets()
			want := 0
			for _, f := range tf[1:] {
				n := mergedRanges(cfg.Sampler.Pick(SampleID(cfg.SampleID, m.ID, f.Path), f.Blocks.Count(), rangeSample))
				if tc.after == 0 {
					want++
				} else {
					want += (n + tc.after - 1) / tc.after
				}
			}
			for _, n := range gets {
				if n > tc.after {
					t.Errorf("GETs after learning asked for %v ranges; want at most %d", gets, tc.after)
					break
				}
			}
			if len(gets) != want {
				t.Errorf("%d GETs for 3 files after learning (%v), want %d", len(gets), gets, want)
			}
		})
	}
}

// mergedRanges counts the ranges of picked blocks, neighbours merged.
func mergedRanges(pick []int) int {
	n := 0
	for i, b := range pick {
		if i == 0 || pick[i-1]+1 != b {
			n++
		}
	}
	return n
}

func firstOr(ways []checks.RangeWay) checks.RangeWay {
	if len(ways) == 0 {
		return checks.RangeWay{}
	}
	return ways[0]
}

// TestPullPrimeOfAServerNotHonouringOneByte: a pull mirror that answers a
// one-byte range with the whole file as a 206 (busybox httpd) is not read
// past a few bytes for it; the cache cannot be primed by a range, which
// is learned, and each file is primed and verified with a full GET.
func TestPullPrimeOfAServerNotHonouringOneByte(t *testing.T) {
	tf := sampledFiles(t, 3)
	rm := newRangeMirror(tf, rangeserver.Behaviour{ZeroEndWhole: true})
	srv := newServer(t, rm.ServeHTTP)
	cfg := sampledConfig(newClient(t))
	var told []string
	cfg.Learned = func(by Priming, why string) { told = append(told, string(by)+": "+why) }
	var col collector
	m := Mirror{ID: 4, Name: "busybox", BaseURL: srv.URL, Mode: ModePull, Concurrency: 1}
	if err := Prime(t.Context(), cfg, m, filesOf(tf), col.emit); err != nil {
		t.Fatal(err)
	}
	for p, o := range col.files(t) {
		if r := o.Result; r.Kind != checks.KindOK || !r.Hashed {
			t.Errorf("%s: %s hashed=%v (%s); want verified in full", p, r.Kind, r.Hashed, r.Detail)
		}
	}
	if len(told) != 1 || !strings.HasPrefix(told[0], "get: the cache does not honour a one-byte range") {
		t.Errorf("told %q", told)
	}
	// One one-byte request, then a GET per file; the one-byte answer's
	// body (a whole file) was not read: the server sent at most what the
	// sockets between buffer of it, and the files in full once each.
	if gets := rm.gets(); len(gets) != 4 || gets[0] != 1 {
		t.Errorf("GETs asked for %v ranges; want one one-byte request, then 3 GETs in full", gets)
	}
}
