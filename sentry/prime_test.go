package sentry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/prime"
	"github.com/mirrorsentry/sentry/sentry/release"
	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	locWin   = "/firefox/releases/1.5/win32/:lang/Firefox Setup 1.5.exe"
	locLinux = "/firefox/releases/1.5/linux-x86_64/:lang/firefox-1.5.tar.bz2"
)

// bundle is what a prime test works with besides the Deps.
type bundle struct {
	rel    *localmirror.Release
	master *localmirror.Server
	st     *store.Store
	locWin int
	locLin int
	logs   *bytes.Buffer
	// seen is every check the world's runs made, routine ones included
	// (those are only counted in the database).
	seen *seenChecks
}

// seenChecks records every check observers are told of.
type seenChecks struct {
	mu     sync.Mutex
	checks []observe.CheckEvent
}

func (s *seenChecks) CheckDone(c observe.CheckEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, c)
}
func (*seenChecks) StateChanged(observe.StateChangeEvent) {}
func (*seenChecks) GuardHeld(observe.GuardEvent)          {}
func (*seenChecks) RunFinished(observe.RunEvent)          {}

// all returns the checks seen so far, in the order they were made.
func (s *seenChecks) all() []observe.CheckEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.checks)
	slices.SortStableFunc(out, func(a, b observe.CheckEvent) int { return a.At.Compare(b.At) })
	return out
}

// setup makes a migrated database holding a Firefox-1.5 product in en-US
// and de with two :lang locations, a master serving the release, and Deps
// configured for fast local tests.
func setup(t *testing.T) (*sentry.Deps, *bundle) {
	t.Helper()
	ctx := context.Background()
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{}}
	for _, lang := range []string{"en-US", "de"} {
		p := "win32/" + lang + "/Firefox Setup 1.5.exe"
		rel.Files[p] = localmirror.Content(p, 70_000)
		p = "linux-x86_64/" + lang + "/firefox-1.5.tar.bz2"
		rel.Files[p] = localmirror.Content(p, 90_000)
	}
	master, err := localmirror.NewMaster(rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })

	dbURL := pgtest.NewDB(t)
	st, err := store.Open(ctx, dbURL, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	b := &bundle{rel: rel, master: master, st: st, logs: &bytes.Buffer{}, seen: &seenChecks{}}
	err = st.Pool().QueryRow(ctx, `
		WITH p AS (INSERT INTO mirror_products (name) VALUES ('Firefox-1.5') RETURNING id),
		     langs AS (INSERT INTO mirror_product_langs (product_id, language) SELECT id, l FROM p, unnest(ARRAY['en-US','de']) l),
		     os AS (INSERT INTO mirror_os (name) VALUES ('win'), ('linux') RETURNING id, name),
		     lw AS (INSERT INTO mirror_locations (product_id, os_id, path)
		            SELECT p.id, os.id, $1 FROM p, os WHERE os.name = 'win' RETURNING id),
		     ll AS (INSERT INTO mirror_locations (product_id, os_id, path)
		            SELECT p.id, os.id, $2 FROM p, os WHERE os.name = 'linux' RETURNING id)
		SELECT (SELECT id FROM lw), (SELECT id FROM ll)`, locWin, locLinux).Scan(&b.locWin, &b.locLin)
	if err != nil {
		t.Fatal(err)
	}

	cfg := config.Default()
	cfg.Database.URL = dbURL
	cfg.Master.URL = master.URL
	cfg.Releases.Dir = "/firefox/releases/{release}/"
	cfg.Releases.Products = []string{"Firefox-{release}", "Firefox-{release}-SSL"}
	cfg.Checks.Contact = "https://example.org/sentry-tests"
	cfg.Checks.Retries = 1
	// Local mirrors answer at once: the tests that are not about the
	// request rate should not wait for it.
	cfg.Checks.PerMirrorRate = 100_000
	cfg.Checks.RetryWaitMin = config.Duration(5 * time.Millisecond)
	cfg.Checks.RetryWaitMax = config.Duration(20 * time.Millisecond)
	cfg.Checks.BodyIdleTimeout = config.Duration(300 * time.Millisecond)
	cfg.Checks.HeaderTimeout = config.Duration(5 * time.Second)
	cfg.Prime.Deadline = config.Duration(3 * time.Second)
	cfg.Prime.PollInterval = config.Duration(5 * time.Millisecond)
	cfg.Prime.PollMax = config.Duration(20 * time.Millisecond)
	cfg.Trigger.Secret = "trigger-secret-for-tests"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	client, err := sentry.NewClient(&cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return &sentry.Deps{Config: &cfg, Store: st, Client: client, Logger: log, Observer: b.seen}, b
}

// addMirror inserts an active mirror (and its settings when mode is not
// empty) and returns its id.
func (b *bundle) addMirror(t *testing.T, name, baseURL, mode, triggerURL string, maxConc int) int {
	t.Helper()
	ctx := context.Background()
	var id int
	if err := b.st.Pool().QueryRow(ctx, `INSERT INTO mirror_mirrors (name, baseurl, rating) VALUES ($1, $2, 10) RETURNING id`,
		name, baseURL).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if mode != "" || maxConc > 0 {
		if mode == "" {
			mode = "pull"
		}
		var conc any
		if maxConc > 0 {
			conc = maxConc
		}
		if _, err := b.st.Pool().Exec(ctx, `INSERT INTO sentry_mirror_settings (mirror_id, prime_mode, trigger_url, max_concurrency)
			VALUES ($1, $2, nullif($3, ''), $4)`, id, mode, triggerURL, conc); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// static starts a mirror holding the whole release and registers it.
func (b *bundle) static(t *testing.T, name string) (*localmirror.Server, int) {
	t.Helper()
	s, err := localmirror.NewStatic(name, b.rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, b.addMirror(t, name, s.URL, "", "", 0)
}

type lmmRow struct {
	Active, Healthy bool
}

// marks returns mirror_location_mirror_map as location → mirror → row.
func (b *bundle) marks(t *testing.T) map[int]map[int]lmmRow {
	t.Helper()
	rows, err := b.st.Pool().Query(context.Background(), `SELECT location_id, mirror_id, active, healthy FROM mirror_location_mirror_map`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int]map[int]lmmRow{}
	for rows.Next() {
		var loc, m int
		var r lmmRow
		if err := rows.Scan(&loc, &m, &r.Active, &r.Healthy); err != nil {
			t.Fatal(err)
		}
		if out[loc] == nil {
			out[loc] = map[int]lmmRow{}
		}
		out[loc][m] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// redirector runs the redirector's query of DESIGN.md section 2.
func (b *bundle) redirector(t *testing.T, location int, healthy bool) []int {
	t.Helper()
	rows, err := b.st.Pool().Query(context.Background(), `
		SELECT m.id, m.baseurl, m.rating
		FROM mirror_mirrors m
		JOIN mirror_location_mirror_map lmm ON lmm.mirror_id = m.id
		WHERE lmm.location_id = $1 AND m.active AND lmm.active AND lmm.healthy = $2
		ORDER BY m.rating`, location, healthy)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []int
	for rows.Next() {
		var id, rating int
		var base string
		if err := rows.Scan(&id, &base, &rating); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

func primeRelease(t *testing.T, d *sentry.Deps) *prime.Report {
	t.Helper()
	rep, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5"})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func mirrorSums(t *testing.T, rep *prime.Report, name string) prime.MirrorSums {
	t.Helper()
	for _, m := range rep.Mirrors {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("mirror %s not in report", name)
	return prime.MirrorSums{}
}

func TestPrimeGoodPullMirror(t *testing.T) {
	d, b := setup(t)
	cache, err := localmirror.NewPullCache("cache", b.master)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	id := b.addMirror(t, "cache", cache.URL, "pull", "", 0)

	rep := primeRelease(t, d)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
	}
	s := mirrorSums(t, rep, "cache")
	if s.State != "ok" || s.FilesOK != 4 || s.FilesFailed != 0 || !s.Marked || s.LocationsGood != 2 {
		t.Errorf("summary: %+v", s)
	}
	marks := b.marks(t)
	for _, loc := range []int{b.locWin, b.locLin} {
		if got := marks[loc][id]; got != (lmmRow{true, true}) {
			t.Errorf("location %d: %+v, want active and healthy", loc, got)
		}
	}
	for _, p := range b.rel.Paths() {
		if !cache.Has(b.rel, p) {
			t.Errorf("the cache did not pull %s", p)
		}
	}
	// Every file's check is recorded, with the cache's word after priming.
	var n, cached int
	if err := b.st.Pool().QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE cache_status LIKE '%HIT%')
		FROM sentry_checks WHERE run_id = $1 AND mirror_id = $2 AND result = 'ok' AND hashed`, rep.RunID, id).Scan(&n, &cached); err != nil {
		t.Fatal(err)
	}
	if n != 4 || cached != 4 {
		t.Errorf("recorded %d verified checks, %d with a cache HIT after priming; want 4 and 4", n, cached)
	}
	var reason string
	var up bool
	if err := b.st.Pool().QueryRow(context.Background(), `SELECT reason, mirror_active FROM sentry_log WHERE mirror_id = $1`, id).Scan(&reason, &up); err != nil {
		t.Fatal(err)
	}
	if !up || !strings.Contains(reason, "4/4 files verified") {
		t.Errorf("sentry_log: up=%v reason=%q", up, reason)
	}
	var outcome string
	var finished *time.Time
	if err := b.st.Pool().QueryRow(context.Background(), `SELECT outcome, finished_at FROM sentry_runs WHERE id = $1`, rep.RunID).Scan(&outcome, &finished); err != nil {
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
	winDE := "win32/de/Firefox Setup 1.5.exe"
	tests := []struct {
		name  string
		fault func(s *localmirror.Server, rel *localmirror.Release)
		kind  string
		// want is the mark of the win32 and linux locations on the mirror.
		wantWin, wantLin lmmRow
		state            string
	}{
		{
			name:    "truncated file",
			fault:   func(s *localmirror.Server, rel *localmirror.Release) { s.Put(rel, winDE, rel.Files[winDE][:1000]) },
			kind:    "size_mismatch",
			wantWin: lmmRow{false, false}, wantLin: lmmRow{true, true}, state: "partial",
		},
		{
			name: "one byte changed",
			fault: func(s *localmirror.Server, rel *localmirror.Release) {
				s.Put(rel, winDE, localmirror.Flip(rel.Files[winDE]))
			},
			kind:    "checksum_mismatch",
			wantWin: lmmRow{false, false}, wantLin: lmmRow{true, true}, state: "partial",
		},
		{
			name:    "one language missing",
			fault:   func(s *localmirror.Server, rel *localmirror.Release) { s.Remove(rel, winDE) },
			kind:    "not_found",
			wantWin: lmmRow{false, false}, wantLin: lmmRow{true, true}, state: "partial",
		},
		{
			name:    "stalled body",
			fault:   func(s *localmirror.Server, rel *localmirror.Release) { localmirror.StallBody(s, rel, winDE) },
			kind:    "timeout",
			wantWin: lmmRow{true, false}, wantLin: lmmRow{true, true}, state: "partial",
		},
		{
			name:    "endless body",
			fault:   func(s *localmirror.Server, rel *localmirror.Release) { localmirror.EndlessBody(s, rel, winDE) },
			kind:    "too_large",
			wantWin: lmmRow{false, false}, wantLin: lmmRow{true, true}, state: "partial",
		},
		{
			name:    "503 everywhere",
			fault:   func(s *localmirror.Server, rel *localmirror.Release) { localmirror.Unavailable(s) },
			kind:    "http_status",
			wantWin: lmmRow{true, false}, wantLin: lmmRow{true, false}, state: "down",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, b := setup(t)
			b.static(t, "good1")
			b.static(t, "good2")
			bad, id := b.static(t, "faulty")
			// The faulty mirror held the release before: its rows say
			// active, so that "active unchanged" is visible.
			if _, err := b.st.Pool().Exec(context.Background(), `INSERT INTO mirror_location_mirror_map (location_id, mirror_id, active, healthy)
				VALUES ($1, $3, true, true), ($2, $3, true, true)`, b.locWin, b.locLin, id); err != nil {
				t.Fatal(err)
			}
			tt.fault(bad, b.rel)

			rep := primeRelease(t, d)
			if rep.Outcome != store.OutcomeCompleted {
				t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
			}
			s := mirrorSums(t, rep, "faulty")
			if s.State != tt.state || s.Failures[checks.Kind(tt.kind)] == 0 {
				t.Errorf("summary: %+v; want state %s with %s", s, tt.state, tt.kind)
			}
			var n int
			if err := b.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM sentry_checks
				WHERE run_id = $1 AND mirror_id = $2 AND result = $3`, rep.RunID, id, tt.kind).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Errorf("no %s check recorded", tt.kind)
			}
			// Never trust a mirror: no body was read past its size + 1.
			var over int64
			if err := b.st.Pool().QueryRow(context.Background(), `SELECT coalesce(max(c.bytes - f.size), 0)
				FROM sentry_checks c JOIN sentry_release_files f ON f.release_id = c.release_id AND f.path = c.path
				WHERE c.run_id = $1 AND c.method = 'GET'`, rep.RunID).Scan(&over); err != nil {
				t.Fatal(err)
			}
			if over > 1 {
				t.Errorf("a body was read %d bytes past its size", over)
			}
			marks := b.marks(t)
			if got := marks[b.locWin][id]; got != tt.wantWin {
				t.Errorf("win32 location: %+v, want %+v", got, tt.wantWin)
			}
			if got := marks[b.locLin][id]; got != tt.wantLin {
				t.Errorf("linux location: %+v, want %+v", got, tt.wantLin)
			}
			// The redirector never picks a mirror whose location is not good.
			for _, loc := range []int{b.locWin, b.locLin} {
				good := b.redirector(t, loc, true)
				wantGood := 2
				if marks[loc][id] == (lmmRow{true, true}) {
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
	d, b := setup(t)
	// 40 more files so that the cap is what limits the requests in flight.
	for i := range 40 {
		p := "extra/file-" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ".bin"
		b.rel.Files[p] = localmirror.Content(p, 20_000)
		b.master.Put(b.rel, p, b.rel.Files[p])
	}
	b.master.Put(b.rel, "SHA256SUMS", b.rel.Manifest())
	capped, err := localmirror.NewStatic("capped", b.rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { capped.Close() })
	b.addMirror(t, "capped", capped.URL, "pull", "", 2)
	def, _ := b.static(t, "default")

	rep := primeRelease(t, d)
	if got := mirrorSums(t, rep, "capped"); got.FilesOK != 44 {
		t.Fatalf("capped mirror: %+v", got)
	}
	if m := capped.Stats().MaxInFlight; m > 2 || m < 1 {
		t.Errorf("mirror capped at 2 saw %d requests in flight", m)
	}
	if m := def.Stats().MaxInFlight; m > 4 || m < 1 {
		t.Errorf("mirror with the default cap (4) saw %d requests in flight", m)
	}
}

func TestPrimeTriggerAndPassiveMirrors(t *testing.T) {
	d, b := setup(t)
	trig, err := localmirror.NewTrigger("trig", b.rel, []byte(d.Config.Trigger.Secret), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trig.Close() })
	tid := b.addMirror(t, "trig", trig.URL, "trigger", trig.TriggerURL, 0)
	pas, err := localmirror.NewPassive("passive", b.rel, 5)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pas.Close() })
	pid := b.addMirror(t, "passive", pas.URL, "passive", "", 0)
	b.static(t, "good")

	rep := primeRelease(t, d)
	if good, rejected := trig.Triggers(); good != 1 || rejected != 0 {
		t.Errorf("trigger mirror got %d good and %d rejected triggers", good, rejected)
	}
	var body struct {
		Release string   `json:"release"`
		Files   []string `json:"files"`
	}
	if err := json.Unmarshal(trig.LastTrigger(), &body); err != nil || body.Release != "1.5" || len(body.Files) != 4 {
		t.Errorf("trigger body %s (%v)", trig.LastTrigger(), err)
	}
	for _, name := range []string{"trig", "passive"} {
		if s := mirrorSums(t, rep, name); s.State != "ok" || s.FilesOK != 4 {
			t.Errorf("%s: %+v", name, s)
		}
	}
	marks := b.marks(t)
	for _, id := range []int{tid, pid} {
		for _, loc := range []int{b.locWin, b.locLin} {
			if marks[loc][id] != (lmmRow{true, true}) {
				t.Errorf("mirror %d location %d: %+v", id, loc, marks[loc][id])
			}
		}
	}
}

func TestPrimePassiveNeverSyncedIsNotPrimed(t *testing.T) {
	d, b := setup(t)
	d.Config.Prime.Deadline = config.Duration(100 * time.Millisecond)
	empty, err := localmirror.NewPassive("lazy", &localmirror.Release{Name: "1.5", Dir: b.rel.Dir}, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { empty.Close() })
	id := b.addMirror(t, "lazy", empty.URL, "passive", "", 0)
	b.static(t, "good")
	rep := primeRelease(t, d)
	s := mirrorSums(t, rep, "lazy")
	if s.Failures["not_primed"] != 4 {
		t.Errorf("summary %+v", s)
	}
	if m := b.marks(t)[b.locWin][id]; m != (lmmRow{false, false}) {
		t.Errorf("not primed location: %+v", m)
	}
}

func TestPrimeRedirectorPicksExactlyTheGoodMirrors(t *testing.T) {
	d, b := setup(t)
	_, g1 := b.static(t, "good1")
	_, g2 := b.static(t, "good2")
	corrupt, c := b.static(t, "corrupt")
	corrupt.Put(b.rel, "linux-x86_64/en-US/firefox-1.5.tar.bz2", localmirror.Flip(b.rel.Files["linux-x86_64/en-US/firefox-1.5.tar.bz2"]))
	missing, m := b.static(t, "missing")
	missing.Remove(b.rel, "win32/en-US/Firefox Setup 1.5.exe")
	dead, err := localmirror.DeadURL()
	if err != nil {
		t.Fatal(err)
	}
	dd := b.addMirror(t, "dead", dead, "", "", 0)
	rep := primeRelease(t, d)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
	}
	if s := mirrorSums(t, rep, "dead"); s.State != "down" || s.Failures["connect"] != 4 {
		t.Errorf("dead mirror: %+v", s)
	}
	winGood := b.redirector(t, b.locWin, true)
	linGood := b.redirector(t, b.locLin, true)
	if want := sorted(g1, g2, c); !equal(winGood, want) {
		t.Errorf("redirector for win32: %v, want %v", winGood, want)
	}
	if want := sorted(g1, g2, m); !equal(linGood, want) {
		t.Errorf("redirector for linux: %v, want %v", linGood, want)
	}
	// The fallback (healthy=false) never offers a missing or corrupt copy.
	if got := b.redirector(t, b.locWin, false); len(got) != 0 {
		t.Errorf("fallback for win32 offers %v", got)
	}
	_ = dd
}

func TestPrimeMasterDownMarksNothingDown(t *testing.T) {
	d, b := setup(t)
	_, good := b.static(t, "good")
	missing, mid := b.static(t, "missing")
	missing.Remove(b.rel, "win32/de/Firefox Setup 1.5.exe")
	dead, err := localmirror.DeadURL()
	if err != nil {
		t.Fatal(err)
	}
	did := b.addMirror(t, "dead", dead, "", "", 0)
	// The master is gone from the moment mirrors are checked.
	var masterDown atomic.Bool
	b.master.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		if !masterDown.Load() {
			return false
		}
		http.Error(w, "gone", http.StatusServiceUnavailable)
		return true
	})
	missing.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		masterDown.Store(true)
		return false
	})
	rep := primeRelease(t, d)
	if rep.Outcome != store.OutcomeGuarded || !strings.Contains(rep.Reason, "master") {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
	}
	marks := b.marks(t)
	for loc, byMirror := range marks {
		for m, row := range byMirror {
			if !row.Active || !row.Healthy {
				t.Errorf("location %d mirror %d marked down (%+v) while the master was unreachable", loc, m, row)
			}
		}
	}
	if marks[b.locWin][good] != (lmmRow{true, true}) {
		t.Errorf("the good mirror was not marked good")
	}
	_, _ = mid, did
	var outcome, reason string
	if err := b.st.Pool().QueryRow(context.Background(), `SELECT outcome, reason FROM sentry_runs WHERE id = $1`, rep.RunID).Scan(&outcome, &reason); err != nil {
		t.Fatal(err)
	}
	if outcome != "guarded" || !strings.Contains(reason, "master") {
		t.Errorf("run record: %s %q", outcome, reason)
	}
}

func TestPrimeMassFailureGuard(t *testing.T) {
	d, b := setup(t)
	_, good := b.static(t, "good")
	var dead []int
	for _, name := range []string{"dead1", "dead2"} {
		u, err := localmirror.DeadURL()
		if err != nil {
			t.Fatal(err)
		}
		dead = append(dead, b.addMirror(t, name, u, "", "", 0))
	}
	// The dead mirrors held the release: the guard must leave them so.
	for _, id := range dead {
		if _, err := b.st.Pool().Exec(context.Background(), `INSERT INTO mirror_location_mirror_map (location_id, mirror_id, active, healthy)
			VALUES ($1, $2, true, true)`, b.locWin, id); err != nil {
			t.Fatal(err)
		}
	}
	rep := primeRelease(t, d)
	if rep.Outcome != store.OutcomeGuarded || !strings.Contains(rep.Reason, "2 of 3 mirrors") {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Reason)
	}
	marks := b.marks(t)
	for _, id := range dead {
		if marks[b.locWin][id] != (lmmRow{true, true}) {
			t.Errorf("dead mirror %d marked down despite the guard: %+v", id, marks[b.locWin][id])
		}
	}
	if marks[b.locWin][good] != (lmmRow{true, true}) {
		t.Errorf("good mirror not marked")
	}
}

func TestPrimeResumeAfterInterruption(t *testing.T) {
	// An uninterrupted run, for the state to compare with.
	dRef, bRef := setup(t)
	bRef.static(t, "a")
	bRef.static(t, "b")
	primeRelease(t, dRef)
	want := bRef.marks(t)

	d, b := setup(t)
	// Mirror a takes one file at a time, so that the files before the
	// interruption are complete and the ones after it not begun.
	sa, err := localmirror.NewStatic("a", b.rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sa.Close() })
	b.addMirror(t, "a", sa.URL, "pull", "", 1)
	b.static(t, "b")
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
	if err := b.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM sentry_file_state fs JOIN mirror_mirrors m ON m.id = fs.mirror_id
		WHERE m.name = 'a' AND fs.result = 'ok' AND fs.hashed_at IS NOT NULL`).Scan(&verifiedBefore); err != nil {
		t.Fatal(err)
	}
	if verifiedBefore != 2 {
		t.Fatalf("%d files of mirror a verified before the interruption; want 2", verifiedBefore)
	}
	// No half-marked mirror: a was not marked at all.
	for loc := range b.marks(t) {
		if _, ok := b.marks(t)[loc][1]; ok {
			t.Errorf("interrupted mirror a has marks")
		}
	}

	before := gets.Load()
	rep = primeRelease(t, d)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("re-run outcome %s: %s", rep.Outcome, rep.Reason)
	}
	s := mirrorSums(t, rep, "a")
	if s.Resumed != verifiedBefore || s.FilesOK != 4 {
		t.Errorf("re-run of a: %+v; want %d resumed", s, verifiedBefore)
	}
	// Mirror a answered only the files not verified before (GETs) and
	// their cache follow-ups (HEADs, not counted here).
	if got := gets.Load() - before; got != int64(4-verifiedBefore) {
		t.Errorf("re-run downloaded %d files from a; want %d", got, 4-verifiedBefore)
	}
	if got := b.marks(t); !sameMarks(got, want) {
		t.Errorf("resumed state %v differs from an uninterrupted run's %v", got, want)
	}
}

func TestPrimeManifestErrorsWriteNothing(t *testing.T) {
	tests := []struct {
		name     string
		manifest []byte
		want     string
	}{
		{"malformed line", []byte("0123  a.exe\n"), "SHA256SUMS:1:"},
		{"escaping path", []byte(strings.Repeat("ab", 32) + "  ../etc/passwd\n"), ".."},
		{"missing", nil, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, b := setup(t)
			b.static(t, "good")
			if tt.manifest == nil {
				b.master.Remove(b.rel, "SHA256SUMS")
			} else {
				b.master.Put(b.rel, "SHA256SUMS", tt.manifest)
			}
			_, err := sentry.Prime(context.Background(), d, sentry.PrimeOptions{Release: "1.5"})
			if !errors.Is(err, release.ErrManifest) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want ErrManifest naming %q", err, tt.want)
			}
			var n int
			if err := b.st.Pool().QueryRow(context.Background(), `SELECT (SELECT count(*) FROM sentry_releases) +
				(SELECT count(*) FROM sentry_work) + (SELECT count(*) FROM sentry_checks) +
				(SELECT count(*) FROM mirror_location_mirror_map) + (SELECT count(*) FROM sentry_log)`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%d rows written for a run that could not be done", n)
			}
			// The run itself is recorded as failed, with the reason.
			var outcome, reason string
			if err := b.st.Pool().QueryRow(context.Background(), `SELECT outcome, reason FROM sentry_runs`).Scan(&outcome, &reason); err != nil {
				t.Fatal(err)
			}
			if outcome != store.OutcomeFailed || !strings.Contains(reason, tt.want) {
				t.Errorf("run recorded %s %q; want failed naming %q", outcome, reason, tt.want)
			}
		})
	}
}

func TestPrimeReportJSON(t *testing.T) {
	d, b := setup(t)
	b.static(t, "good")
	rep := primeRelease(t, d)
	buf, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"run_id", "release", "outcome", "files", "locations", "mirrors", "unresolved_locations"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, buf)
		}
	}
	if len(rep.Mirrors) != 1 || rep.Mirrors[0].Name != "good" || rep.Outcome != "completed" {
		t.Errorf("report: %s", buf)
	}
}

func sorted(ids ...int) []int { sort.Ints(ids); return ids }

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameMarks(a, b map[int]map[int]lmmRow) bool {
	if len(a) != len(b) {
		return false
	}
	for loc, am := range a {
		bm := b[loc]
		if len(am) != len(bm) {
			return false
		}
		for m, r := range am {
			if bm[m] != r {
				return false
			}
		}
	}
	return true
}

func TestPrimeReportsUnresolvedLocations(t *testing.T) {
	d, b := setup(t)
	_, id := b.static(t, "good")
	var msi, old int
	if err := b.st.Pool().QueryRow(context.Background(), `
		WITH ins AS (INSERT INTO mirror_locations (product_id, os_id, path)
			SELECT product_id, os_id, p FROM mirror_locations,
			       unnest(ARRAY['/firefox/releases/1.5/win32/:lang/Firefox Setup 1.5.msi', '/firefox/releases/1.4/win32/x.exe']) WITH ORDINALITY AS u(p, n)
			WHERE id = $1 RETURNING id, path)
		SELECT (SELECT id FROM ins WHERE path LIKE '%.msi'), (SELECT id FROM ins WHERE path LIKE '%1.4%')`, b.locWin).Scan(&msi, &old); err != nil {
		t.Fatal(err)
	}
	rep := primeRelease(t, d)
	if rep.Locations != 2 || len(rep.Unresolved) != 2 {
		t.Fatalf("locations %d, unresolved %+v", rep.Locations, rep.Unresolved)
	}
	reasons := map[int]string{}
	for _, u := range rep.Unresolved {
		reasons[u.LocationID] = u.Reason
	}
	if !strings.Contains(reasons[msi], "not in the manifest: win32/de/Firefox Setup 1.5.msi") {
		t.Errorf("msi location: %q", reasons[msi])
	}
	if !strings.Contains(reasons[old], "not under the release directory") {
		t.Errorf("1.4 location: %q", reasons[old])
	}
	marks := b.marks(t)
	if _, ok := marks[msi][id]; ok {
		t.Errorf("unresolved location marked")
	}
	if marks[b.locWin][id] != (lmmRow{true, true}) {
		t.Errorf("resolved location not marked good")
	}
	if len(rep.MissingProducts) != 1 || rep.MissingProducts[0] != "Firefox-1.5-SSL" {
		t.Errorf("missing products %v", rep.MissingProducts)
	}
}
