package prime_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestPrimeGoodPullMirror(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	cache, err := localmirror.NewPullCache("cache", w.Master)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	id := w.AddMirror(t, "cache", cache.URL, &factory.MirrorSettingsOpts{PrimeMode: "pull"})

	rep := w.Prime(t)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
	}
	s := world.MirrorSums(t, rep, "cache")
	if s.State != "ok" || s.FilesOK != 4 || s.FilesFailed != 0 || !s.Marked || s.LocationsGood != 2 {
		t.Errorf("summary: %+v", s)
	}
	marks := w.Marks(t)
	for _, loc := range []int{w.LocWin, w.LocLin} {
		if got := marks[loc][id]; got != world.Good {
			t.Errorf("location %d: %+v, want active and healthy", loc, got)
		}
	}
	for _, p := range w.Rel.Paths() {
		if !cache.Has(w.Rel, p) {
			t.Errorf("the cache did not pull %s", p)
		}
	}
	// Every file's check is recorded, with the cache's word after priming.
	var n, cached int
	if err := w.Pool().QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE cache_status LIKE '%HIT%')
		FROM sentry_checks WHERE run_id = $1 AND mirror_id = $2 AND result = 'ok' AND hashed`, rep.RunID, id).Scan(&n, &cached); err != nil {
		t.Fatal(err)
	}
	if n != 4 || cached != 4 {
		t.Errorf("recorded %d verified checks, %d with a cache HIT after priming; want 4 and 4", n, cached)
	}
	var reason string
	var up bool
	if err := w.Pool().QueryRow(context.Background(), `SELECT reason, mirror_active FROM sentry_log WHERE mirror_id = $1`, id).Scan(&reason, &up); err != nil {
		t.Fatal(err)
	}
	if !up || !strings.Contains(reason, "4/4 files verified") {
		t.Errorf("sentry_log: up=%v reason=%q", up, reason)
	}
	var outcome string
	var finished *time.Time
	if err := w.Pool().QueryRow(context.Background(), `SELECT outcome, finished_at FROM sentry_runs WHERE id = $1`, rep.RunID).Scan(&outcome, &finished); err != nil {
		t.Fatal(err)
	}
	if outcome != "completed" || finished == nil {
		t.Errorf("run record: %s, finished %v", outcome, finished)
	}
	for _, ua := range cache.UserAgents() {
		if !strings.HasPrefix(ua, "sentry/") || !strings.Contains(ua, "(+https://example.org/sentry-tests)") {
			t.Errorf("User-Agent %q", ua)
		}
	}
}

// TestPrimeFailureKinds runs one faulty mirror beside two good ones (so the
// mass-failure guard stays out of it) and checks the kind it records and
// the marks it leaves.
func TestPrimeFailureKinds(t *testing.T) {
	t.Parallel()
	winDE := "win32/de/Firefox Setup 1.5.exe"
	tests := []struct {
		name  string
		fault func(s *localmirror.Server, rel *localmirror.Release)
		kind  string
		// want is the mark of the win32 and linux locations on the mirror.
		wantWin, wantLin world.Mark
		state            string
	}{
		{
			name:    "truncated file",
			fault:   func(s *localmirror.Server, rel *localmirror.Release) { s.Put(rel, winDE, rel.Files[winDE][:1000]) },
			kind:    "size_mismatch",
			wantWin: world.Off, wantLin: world.Good, state: "partial",
		},
		{
			name: "one byte changed",
			fault: func(s *localmirror.Server, rel *localmirror.Release) {
				s.Put(rel, winDE, localmirror.Flip(rel.Files[winDE]))
			},
			kind:    "checksum_mismatch",
			wantWin: world.Off, wantLin: world.Good, state: "partial",
		},
		{
			name:    "one language missing",
			fault:   func(s *localmirror.Server, rel *localmirror.Release) { s.Remove(rel, winDE) },
			kind:    "not_found",
			wantWin: world.Off, wantLin: world.Good, state: "partial",
		},
		{
			name:    "stalled body",
			fault:   func(s *localmirror.Server, rel *localmirror.Release) { localmirror.StallBody(s, rel, winDE) },
			kind:    "timeout",
			wantWin: world.Unhealthy, wantLin: world.Good, state: "partial",
		},
		{
			name:    "endless body",
			fault:   func(s *localmirror.Server, rel *localmirror.Release) { localmirror.EndlessBody(s, rel, winDE) },
			kind:    "too_large",
			wantWin: world.Off, wantLin: world.Good, state: "partial",
		},
		{
			name:    "503 everywhere",
			fault:   func(s *localmirror.Server, rel *localmirror.Release) { localmirror.Unavailable(s) },
			kind:    "http_status",
			wantWin: world.Unhealthy, wantLin: world.Unhealthy, state: "down",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := world.New(t, nil)
			w.Static(t, "good1")
			w.Static(t, "good2")
			bad, id := w.Static(t, "faulty")
			// The faulty mirror held the release before, verified by
			// sentry: its rows say active, so that "active unchanged" is
			// visible.
			for _, loc := range []int{w.LocWin, w.LocLin} {
				factory.LocationMirror(context.Background(), t, w.Pool(), &factory.LocationMirrorOpts{LocationID: loc, MirrorID: id,
					Active: factory.Ptr(true), Healthy: factory.Ptr(true)})
			}
			factory.MirrorVerified(context.Background(), t, w.Pool(), &factory.MirrorVerifiedOpts{MirrorID: id})
			tt.fault(bad, w.Rel)

			rep := w.Prime(t)
			if rep.Outcome != store.OutcomeCompleted {
				t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
			}
			s := world.MirrorSums(t, rep, "faulty")
			if s.State != tt.state || s.Failures[checks.Kind(tt.kind)] == 0 {
				t.Errorf("summary: %+v; want state %s with %s", s, tt.state, tt.kind)
			}
			var n int
			if err := w.Pool().QueryRow(context.Background(), `SELECT count(*) FROM sentry_checks
				WHERE run_id = $1 AND mirror_id = $2 AND result = $3`, rep.RunID, id, tt.kind).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Errorf("no %s check recorded", tt.kind)
			}
			// Never trust a mirror: no body was read past its size + 1.
			var over int64
			if err := w.Pool().QueryRow(context.Background(), `SELECT coalesce(max(c.bytes - f.size), 0)
				FROM sentry_checks c JOIN sentry_release_files f ON f.release_id = c.release_id AND f.path = c.path
				WHERE c.run_id = $1 AND c.method = 'GET'`, rep.RunID).Scan(&over); err != nil {
				t.Fatal(err)
			}
			if over > 1 {
				t.Errorf("a body was read %d bytes past its size", over)
			}
			marks := w.Marks(t)
			if got := marks[w.LocWin][id]; got != tt.wantWin {
				t.Errorf("win32 location: %+v, want %+v", got, tt.wantWin)
			}
			if got := marks[w.LocLin][id]; got != tt.wantLin {
				t.Errorf("linux location: %+v, want %+v", got, tt.wantLin)
			}
			// The redirector never picks a mirror whose location is not good.
			for _, loc := range []int{w.LocWin, w.LocLin} {
				good := w.Redirector(t, loc, true)
				wantGood := 2
				if marks[loc][id] == world.Good {
					wantGood = 3
				}
				if len(good) != wantGood {
					t.Errorf("redirector, location %d: %v, want %d mirrors", loc, good, wantGood)
				}
			}
		})
	}
}

func TestPrimePerMirrorConcurrencyCap(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	// 40 more files so that the cap is what limits the requests in flight.
	for i := range 40 {
		p := "extra/file-" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ".bin"
		w.Rel.Files[p] = localmirror.Content(p, 20_000)
		w.Master.Put(w.Rel, p, w.Rel.Files[p])
	}
	w.Master.Put(w.Rel, "SHA256SUMS", w.Rel.Manifest())
	capped, err := localmirror.NewStatic("capped", w.Rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { capped.Close() })
	w.AddMirror(t, "capped", capped.URL, &factory.MirrorSettingsOpts{PrimeMode: "pull", MaxConcurrency: factory.Ptr(2)})
	def, _ := w.Static(t, "default")

	rep := w.Prime(t)
	if got := world.MirrorSums(t, rep, "capped"); got.FilesOK != 44 {
		t.Fatalf("capped mirror: %+v", got)
	}
	if m := capped.Stats().MaxInFlight; m > 2 || m < 1 {
		t.Errorf("mirror capped at 2 saw %d requests in flight", m)
	}
	if m := def.Stats().MaxInFlight; m > 4 || m < 1 {
		t.Errorf("mirror with the default cap (4) saw %d requests in flight", m)
	}
}

func TestPrimeRedirectorPicksExactlyTheGoodMirrors(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	_, g1 := w.Static(t, "good1")
	_, g2 := w.Static(t, "good2")
	corrupt, c := w.Static(t, "corrupt")
	corrupt.Put(w.Rel, "linux-x86_64/en-US/firefox-1.5.tar.bz2", localmirror.Flip(w.Rel.Files["linux-x86_64/en-US/firefox-1.5.tar.bz2"]))
	missing, m := w.Static(t, "missing")
	missing.Remove(w.Rel, "win32/en-US/Firefox Setup 1.5.exe")
	dead, err := localmirror.DeadURL()
	if err != nil {
		t.Fatal(err)
	}
	dd := w.AddMirror(t, "dead", dead, nil)
	rep := w.Prime(t)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
	}
	if s := world.MirrorSums(t, rep, "dead"); s.State != "down" || s.Failures["connect"] != 4 {
		t.Errorf("dead mirror: %+v", s)
	}
	winGood := w.Redirector(t, w.LocWin, true)
	linGood := w.Redirector(t, w.LocLin, true)
	if want := world.Sorted(g1, g2, c); !slices.Equal(winGood, want) {
		t.Errorf("redirector for win32: %v, want %v", winGood, want)
	}
	if want := world.Sorted(g1, g2, m); !slices.Equal(linGood, want) {
		t.Errorf("redirector for linux: %v, want %v", linGood, want)
	}
	// The fallback (healthy=false) never offers a missing or corrupt copy.
	if got := w.Redirector(t, w.LocWin, false); len(got) != 0 {
		t.Errorf("fallback for win32 offers %v", got)
	}
	_ = dd
}

func TestPrimeResumeAfterInterruption(t *testing.T) {
	t.Parallel()
	// An uninterrupted run, for the state to compare with.
	ref := world.New(t, nil)
	ref.Static(t, "a")
	ref.Static(t, "b")
	ref.Prime(t)
	want := ref.Marks(t)

	w := world.New(t, nil)
	d := w.Deps
	// Mirror a takes one file at a time, so that the files before the
	// interruption are complete and the ones after it not begun.
	sa, err := localmirror.NewStatic("a", w.Rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sa.Close() })
	w.AddMirror(t, "a", sa.URL, &factory.MirrorSettingsOpts{PrimeMode: "pull", MaxConcurrency: factory.Ptr(1)})
	w.Static(t, "b")
	// Mirror a cuts the run short: its third file request cancels the run.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var gets atomic.Int64
	sa.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && gets.Add(1) == 3 {
			cancel()
			<-r.Context().Done()
			return true
		}
		return false
	})
	rep, err := sentry.Prime(ctx, d, sentry.PrimeOptions{Release: "1.5"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != store.OutcomeInterrupted {
		t.Fatalf("outcome %s", rep.Outcome)
	}
	var verifiedBefore int
	if err := w.Pool().QueryRow(context.Background(), `SELECT count(*) FROM sentry_file_state fs JOIN mirror_mirrors m ON m.id = fs.mirror_id
		WHERE m.name = 'a' AND fs.result = 'ok' AND fs.hashed_at IS NOT NULL`).Scan(&verifiedBefore); err != nil {
		t.Fatal(err)
	}
	if verifiedBefore != 2 {
		t.Fatalf("%d files of mirror a verified before the interruption; want 2", verifiedBefore)
	}
	// No half-marked mirror: a was not marked at all.
	for loc := range w.Marks(t) {
		if _, ok := w.Marks(t)[loc][1]; ok {
			t.Errorf("interrupted mirror a has marks")
		}
	}

	before := gets.Load()
	rep = w.Prime(t)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("re-run outcome %s: %s", rep.Outcome, rep.Reason)
	}
	s := world.MirrorSums(t, rep, "a")
	if s.Resumed != verifiedBefore || s.FilesOK != 4 {
		t.Errorf("re-run of a: %+v; want %d resumed", s, verifiedBefore)
	}
	// Mirror a answered only the files not verified before (GETs) and
	// their cache follow-ups (HEADs, not counted here).
	if got := gets.Load() - before; got != int64(4-verifiedBefore) {
		t.Errorf("re-run downloaded %d files from a; want %d", got, 4-verifiedBefore)
	}
	if got := w.Marks(t); !world.SameMarks(got, want) {
		t.Errorf("resumed state %v differs from an uninterrupted run's %v", got, want)
	}
}

// TestPrimeDownMirrorIsDownInEveryView: a mirror the prime judged down
// (nothing listens there) is down in its state, sentry_log, the reports
// (and so the page and the metrics, which read them) and the sweep right
// after.
func TestPrimeDownMirrorIsDownInEveryView(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	w.Static(t, "good1")
	w.Static(t, "good2")
	dead, err := localmirror.DeadURL()
	if err != nil {
		t.Fatal(err)
	}
	id := w.AddMirror(t, "dead", dead, nil)
	rep := w.Prime(t)
	if s := world.MirrorSums(t, rep, "dead"); s.State != "down" {
		t.Fatalf("prime: %+v, want down", s)
	}
	var logUp bool
	if err := w.Pool().QueryRow(context.Background(), `SELECT mirror_active FROM sentry_log WHERE mirror_id = $1`, id).Scan(&logUp); err != nil {
		t.Fatal(err)
	}
	states, err := report.New(w.Pool(), time.Now).States(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range states {
		if m.Name == "dead" && m.Condition() != "down" {
			t.Errorf("report after the prime: %s, want down", m.Condition())
		}
	}
	if logUp {
		t.Error("sentry_log says the dead mirror is up")
	}
	if s := world.SweepSums(t, w.Sweep(t, false), "dead"); s.State != "down" || s.Condition != "down" || s.StateChanged {
		t.Errorf("sweep after the prime: %+v; want down, as the prime left it", s)
	}
}
