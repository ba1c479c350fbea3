package bench

// The figures of sweeps that cost what changed: a steady state seeded in
// the database (every file verified on every mirror, every location
// marked, every mirror up), what an unchanged sweep then costs the
// database, the recorder's throughput of unchanged checks, the requests an
// rsync mirror gets, and the rate cap holding.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
	"github.com/mirrorsentry/sentry/sentry/demo/pgcluster"
	"github.com/mirrorsentry/sentry/sentry/manifest"
	"github.com/mirrorsentry/sentry/sentry/record"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// seedSteady records the state a release's active mirrors are in once it
// was primed and swept: every file verified, every location of its
// product good, every mirror up with a full good streak, as seen from
// vantage. A sweep after it finds nothing changed. With farmValidators the
// files carry the validators the load farm gives (its ETag is the first 16
// hex digits of the file's SHA-256), so that sweeps ask conditionally;
// without, none (sweeps ask plainly, and the answer's validators are new
// facts that change nothing).
func seedSteady(ctx context.Context, st *store.Store, release, vantage string, farmValidators bool) error {
	return pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO sentry_file_state (mirror_id, release_id, path, result, last_checked_at, verified_at, hashed_at, size, etag, last_modified)
			SELECT m.id, f.release_id, f.path, 'ok', now(), now(), now(), f.size,
			       CASE WHEN $3 THEN '"' || left(f.hash, 16) || '"' ELSE '' END, CASE WHEN $3 THEN $2 ELSE '' END
			FROM mirror_mirrors m, sentry_release_files f JOIN sentry_releases r ON r.id = f.release_id
			WHERE m.active AND r.name = $1`, release, farmLastModified, farmValidators); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO mirror_location_mirror_map (location_id, mirror_id, active, healthy)
			SELECT l.id, m.id, true, true FROM mirror_mirrors m, mirror_locations l JOIN mirror_products p ON p.id = l.product_id
			WHERE m.active AND p.name = $1
			ON CONFLICT (location_id, mirror_id) DO UPDATE SET active = true, healthy = true`, product(release)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO sentry_mirror_state (mirror_id, state, ok_streak, last_check, last_reason, failing_from, checked_from)
			SELECT id, 'up', 2, now(), 'seeded by sentry-bench', '{}', ARRAY[$1] FROM mirror_mirrors WHERE active
			ON CONFLICT (mirror_id) DO UPDATE SET state = 'up', fail_streak = 0, ok_streak = 2, failing_from = '{}',
				checked_from = ARRAY[$1]`, vantage)
		return err
	})
}

// settle brings the database to the rest a steady state has before a
// timed run: the rows the harness just wrote (seedSteady, an earlier
// figure's) vacuumed, their statistics known and their pages written, so
// that autovacuum, analyze and a checkpoint do not run beside sentry on
// the machine's two cores during its run and not during the bare client's.
func settle(ctx context.Context, st *store.Store) error {
	for _, q := range []string{`VACUUM ANALYZE`, `CHECKPOINT`} {
		if _, err := st.Pool().Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// farmLastModified is what the load farm says of every file
// (internal/bench/loadfarm).
const farmLastModified = "Mon, 02 Jan 2006 15:04:05 GMT"

// dbSize is the database's size on disk after a VACUUM (space freed by
// deletes is reused, not counted twice).
func dbSize(ctx context.Context, st *store.Store) (int64, error) {
	if _, err := st.Pool().Exec(ctx, `VACUUM`); err != nil {
		return 0, err
	}
	var n int64
	err := st.Pool().QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&n)
	return n, err
}

// rowsWritten is how many rows the database inserted, updated and deleted
// in all (pg_stat_database), for the difference around a run.
func rowsWritten(ctx context.Context, st *store.Store) (int64, error) {
	// Statistics reach the shared view when a backend flushes them: the
	// sweep's backends have ended, this one flushes now.
	if _, err := st.Pool().Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		return 0, err
	}
	var n int64
	err := st.Pool().QueryRow(ctx, `SELECT pg_stat_clear_snapshot()::text || '', tup_inserted + tup_updated + tup_deleted
		FROM pg_stat_database WHERE datname = current_database()`).Scan(new(string), &n)
	return n, err
}

// recordingRun is the run the recording figures' checks belong to, and
// the release they check.
func recordingRun(ctx context.Context, st *store.Store) (int64, store.Release, error) {
	var runID int64
	if err := st.Pool().QueryRow(ctx, `INSERT INTO sentry_runs (kind, vantage, host, pid) VALUES ('sweep', 'bench', 'bench', 0)
		RETURNING id`).Scan(&runID); err != nil {
		return 0, store.Release{}, err
	}
	rel, err := st.ReleaseByName(ctx, "light")
	return runID, rel, err
}

// recordUnchanged measures the recorder on n checks that find what was
// known (routine: counted in the hourly rollup, no row each).
func recordUnchanged(ctx context.Context, st *store.Store, mirrors []int, entries []manifestEntry, n int) (float64, error) {
	runID, rel, err := recordingRun(ctx, st)
	if err != nil {
		return 0, err
	}
	var before int64
	if err := st.Pool().QueryRow(ctx, `SELECT coalesce(sum(n), 0) FROM sentry_check_hourly`).Scan(&before); err != nil {
		return 0, err
	}
	now := time.Now()
	rec := record.New(st, slog.New(slog.DiscardHandler))
	start := time.Now()
	for i := range n {
		e := entries[i%len(entries)]
		c := store.Check{RunID: runID, MirrorID: mirrors[(i/len(entries))%len(mirrors)], ReleaseID: rel.ID,
			Path: e.Path, CheckedAt: now, Vantage: "default", Method: "HEAD", Result: "unchanged", Status: 304,
			Bytes: 4096, Duration: time.Millisecond, Attempts: 1, Size: 4096, Routine: true}
		if err := rec.Add(ctx, c); err != nil {
			return 0, err
		}
	}
	if err := rec.Close(ctx); err != nil {
		return 0, err
	}
	el := time.Since(start)
	var after, rows int64
	if err := st.Pool().QueryRow(ctx, `SELECT (SELECT coalesce(sum(n), 0) FROM sentry_check_hourly),
		(SELECT count(*) FROM sentry_checks WHERE run_id = $1)`, runID).Scan(&after, &rows); err != nil {
		return 0, err
	}
	if after-before != int64(n) || rows != 0 {
		return 0, fmt.Errorf("recording unchanged checks: %d counted and %d rows, want %d and none", after-before, rows, n)
	}
	return float64(n) / el.Seconds(), nil
}

// growthResult is the database over many unchanged sweeps.
type growthResult struct {
	at10, atN int64
	sweeps    int
	window    time.Duration // the retention the sweeps were pruned with
	perSweep  time.Duration // mean wall time of a sweep
}

// growth runs sweeps unchanged sweeps (sweep(i)), pruning after each as
// the daemon prunes (store.Prune) once five sweeps have run, with a
// retention window of those five sweeps' time: the database is then in
// the steady state that retention.checks keeps it in (in production 30
// days of sweeps every 15 minutes). It returns the size after the 10th
// sweep and after the last, after VACUUM.
func growth(ctx context.Context, st *store.Store, sweeps int, sweep func(i int) error, logf func(string, ...any)) (growthResult, error) {
	g := growthResult{sweeps: sweeps}
	start := time.Now()
	for i := 1; i <= sweeps; i++ {
		if err := sweep(i); err != nil {
			return g, fmt.Errorf("unchanged sweep %d: %w", i, err)
		}
		if i == 5 {
			g.window = time.Since(start)
		}
		if g.window > 0 {
			if _, err := st.Prune(ctx, store.Retention{Checks: g.window, Rollup: 400 * 24 * time.Hour}); err != nil {
				return g, err
			}
		}
		if i == 10 || i == sweeps {
			n, err := dbSize(ctx, st)
			if err != nil {
				return g, err
			}
			if i == 10 {
				g.at10 = n
			} else {
				g.atN = n
			}
			logf("  after sweep %d: %s", i, mib(n))
		}
	}
	g.perSweep = time.Since(start) / time.Duration(sweeps)
	return g, nil
}

// politeWorld is a small world on its own database: a master and two
// mirrors holding one release (localmirror, in this process), one listed
// over a real rsync daemon and one checked over HTTP under a rate cap.
type politeWorld struct {
	rel          *localmirror.Release
	master       *localmirror.Server
	listed, capd *localmirror.Server
	rsyncd       *localmirror.Rsyncd
	tree         string
	st           *store.Store
	cfg          string
	listedID     int
	capdID       int
	rate         *rateWatch
}

// startPolite starts the world: files of 4 KiB, the capped mirror at
// maxRate requests per second (sentry_mirror_settings.max_rate).
func startPolite(ctx context.Context, cluster *pgcluster.Cluster, dir string, files int, maxRate float64) (w *politeWorld, err error) {
	w = &politeWorld{rate: &rateWatch{}}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	w.rel = &localmirror.Release{Name: "polite", Dir: "/polite/", Files: map[string][]byte{}}
	for i := range files {
		p := fmt.Sprintf("loc%03d/l%02d/file.bin", i/langsPer, i%langsPer)
		w.rel.Files[p] = localmirror.Content(p, 4<<10)
	}
	if w.master, err = localmirror.NewMaster(w.rel); err != nil {
		return nil, err
	}
	if w.listed, err = localmirror.NewStatic("listed", w.rel); err != nil {
		return nil, err
	}
	if w.capd, err = localmirror.NewStatic("capped", w.rel); err != nil {
		return nil, err
	}
	w.capd.Observe(w.rate.observe)
	if w.tree, err = os.MkdirTemp("", "sentry-bench-rsync-"); err != nil {
		return nil, err
	}
	if err = w.listed.Tree(w.tree); err != nil {
		return nil, err
	}
	if w.rsyncd, err = localmirror.StartRsyncd("mirror", w.tree); err != nil {
		return nil, err
	}
	dbURL, err := cluster.CreateDB(ctx, "polite")
	if err != nil {
		return nil, err
	}
	if w.st, err = store.Open(ctx, dbURL, 4); err != nil {
		return nil, err
	}
	if _, err = w.st.Migrate(ctx); err != nil {
		return nil, err
	}
	err = pgx.BeginFunc(ctx, w.st.Pool(), func(tx pgx.Tx) error {
		var pid int
		if err := tx.QueryRow(ctx, `WITH p AS (INSERT INTO mirror_products (name) VALUES ($1) RETURNING id),
			os AS (INSERT INTO mirror_os (name) VALUES ('bench') RETURNING id),
			l AS (INSERT INTO mirror_locations (product_id, os_id, path)
			      SELECT p.id, os.id, '/polite/loc' || lpad(i::text, 3, '0') || '/:lang/file.bin' FROM p, os, generate_series(0, $2 - 1) i)
			SELECT id FROM p`, product(w.rel.Name), (files+langsPer-1)/langsPer).Scan(&pid); err != nil {
			return err
		}
		langs := make([]string, min(files, langsPer))
		for i := range langs {
			langs[i] = fmt.Sprintf("l%02d", i)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO mirror_product_langs (product_id, language) SELECT $1, unnest($2::text[])`, pid, langs); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `WITH m AS (INSERT INTO mirror_mirrors (name, baseurl, rating) VALUES ('listed', $1, 10) RETURNING id)
			INSERT INTO sentry_mirror_settings (mirror_id, prime_mode, rsync_url) SELECT id, 'passive', $2 FROM m RETURNING mirror_id`,
			w.listed.URL, w.rsyncd.URL).Scan(&w.listedID); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `WITH m AS (INSERT INTO mirror_mirrors (name, baseurl, rating) VALUES ('capped', $1, 10) RETURNING id)
			INSERT INTO sentry_mirror_settings (mirror_id, prime_mode, max_rate) SELECT id, 'passive', $2 FROM m RETURNING mirror_id`,
			w.capd.URL, maxRate).Scan(&w.capdID)
	})
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`# sentry-bench: polite
database:
  url: %s
master:
  url: %s
releases:
  dir: "/{release}/"
  manifest: SHA256SUMS
  products: ["Bench-{release}"]
checks:
  contact: https://example.org/sentry-bench
prime:
  poll_interval: 50ms
  poll_max: 200ms
`, dbURL, w.master.URL)
	w.cfg = dir + "/polite.yaml"
	return w, os.WriteFile(w.cfg, []byte(cfg), 0o600)
}

func (w *politeWorld) close() {
	for _, s := range []*localmirror.Server{w.master, w.listed, w.capd} {
		if s != nil {
			s.Close()
		}
	}
	if w.rsyncd != nil {
		w.rsyncd.Close()
	}
	if w.tree != "" {
		os.RemoveAll(w.tree)
	}
	if w.st != nil {
		w.st.Close()
	}
}

// requests returns the HTTP requests each mirror has answered and the
// rsync connections made.
func (w *politeWorld) requests() (listed, capd int64, rsync int) {
	return w.listed.Stats().Requests, w.capd.Stats().Requests, w.rsyncd.Connections()
}

// rateWatch records when requests reach a mirror.
type rateWatch struct {
	mu sync.Mutex
	at []time.Time
}

func (r *rateWatch) observe(*http.Request) func() {
	r.mu.Lock()
	r.at = append(r.at, time.Now())
	r.mu.Unlock()
	return nil
}

func (r *rateWatch) reset() {
	r.mu.Lock()
	r.at = nil
	r.mu.Unlock()
}

// peak is the most requests seen within any span of w, and the mean rate
// from the first request to the last.
func (r *rateWatch) peak(w time.Duration) (most int, mean float64) {
	r.mu.Lock()
	at := append([]time.Time(nil), r.at...)
	r.mu.Unlock()
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	j := 0
	for i := range at {
		for at[i].Sub(at[j]) >= w {
			j++
		}
		most = max(most, i-j+1)
	}
	if len(at) > 1 {
		mean = float64(len(at)-1) / at[len(at)-1].Sub(at[0]).Seconds()
	}
	return most, mean
}

// sweepMirror is one mirror's line of a `sentry sweep --format json`.
type sweepMirror struct {
	Name        string `json:"name"`
	Checked     int    `json:"checked"`
	Listed      int    `json:"listed"`
	RsyncListed bool   `json:"rsync_listed"`
	Failed      int    `json:"failed"`
}

func sweepMirrors(c childResult) (map[string]sweepMirror, error) {
	if c.exit != 0 || c.runErr != nil {
		return nil, fmt.Errorf("%s: exit %d %v", c.command, c.exit, c.runErr)
	}
	var rep struct {
		Mirrors []sweepMirror `json:"mirrors"`
	}
	if err := json.Unmarshal(c.stdout, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", c.command, err)
	}
	out := map[string]sweepMirror{}
	for _, m := range rep.Mirrors {
		out[m.Name] = m
	}
	return out, nil
}

// polite measures the two figures of polite sweeps on their own world:
// the requests an rsync-listed mirror gets in an unchanged light sweep
// against those of a mirror checked over HTTP, and the rate cap holding
// on the latter.
func polite(ctx context.Context, o Options, cluster *pgcluster.Cluster, dir string, p Params, rep *report,
	child func(string, ...string) childResult, logf func(string, ...any)) error {
	w, err := startPolite(ctx, cluster, dir, p.PoliteFiles, p.PoliteRate)
	if err != nil {
		return err
	}
	defer w.close()
	if err := saveMirrortestRelease(ctx, w.st, w.master, w.rel); err != nil {
		return err
	}
	if err := seedSteady(ctx, w.st, w.rel.Name, "default", false); err != nil {
		return err
	}
	// The first sweep lists the rsync tree for the first time (every file
	// over HTTP); the second is the one measured.
	logf("polite: first light sweep (the first rsync listing)")
	if _, err := sweepMirrors(child("polite-1", "sweep", "--config", w.cfg, "--format", "json")); err != nil {
		return err
	}
	l0, c0, r0 := w.requests()
	w.rate.reset()
	logf("polite: unchanged light sweep, the HTTP mirror capped at %.0f requests/s", p.PoliteRate)
	sw := child("polite-2", "sweep", "--config", w.cfg, "--format", "json")
	ms, swErr := sweepMirrors(sw)
	l1, c1, r1 := w.requests()
	listed, capd, conns := l1-l0, c1-c0, r1-r0
	lm := ms["listed"]
	if swErr == nil && (!lm.RsyncListed || lm.Checked != p.PoliteFiles || lm.Failed != 0 || ms["capped"].Checked != p.PoliteFiles) {
		swErr = fmt.Errorf("%w: %+v", errBadSweep, ms)
	}
	ratio := float64(listed) / float64(max(capd, 1))
	logf("  rsync mirror %d HTTP requests + %d rsync connections, HTTP mirror %d requests %v", listed, conns, capd, swErr)
	rep.add(figure{name: "rsync mirror", value: fmt.Sprintf("%d requests", listed), limit: fmt.Sprintf("%d requests", capd),
		ratio: ratio, target: "≤ 0.05, one rsync connection", pass: swErr == nil && conns == 1 && ratio <= 0.05,
		note: fmt.Sprintf("HTTP requests per mirror in an unchanged light sweep of %d files: a mirror with an rsync_url (a real `rsync --daemon`) got %d (the reachability HEAD and the rotating 1%% sample) and %d rsync connection(s), %d files confirmed by the listing; the same files on a mirror without one, %d requests%s",
			p.PoliteFiles, listed, conns, lm.Listed, capd, errNote(swErr, 0))})

	most, mean := w.rate.peak(time.Second)
	capRatio := float64(most) / (p.PoliteRate + 1)
	rep.add(figure{name: "rate cap", value: fmt.Sprintf("%d requests in the busiest second", most),
		limit: fmt.Sprintf("%.0f/s + a burst of 1", p.PoliteRate), ratio: capRatio, target: "≤ 1",
		pass: swErr == nil && capRatio <= 1,
		note: fmt.Sprintf("the HTTP mirror of the sweep above, `sentry_mirror_settings.max_rate` %.0f: %d requests, at most %d within any second (timed as they reached the mirror), %.1f/s on average from the first to the last; the only figure run under a cap that binds (the others set `checks.per_mirror_rate` above what the farm answers)%s",
			p.PoliteRate, capd, most, mean, errNote(swErr, 0))})
	return nil
}

// saveMirrortestRelease records a localmirror release's manifest, read from
// the master serving it, as a prime would.
func saveMirrortestRelease(ctx context.Context, st *store.Store, master *localmirror.Server, rel *localmirror.Release) error {
	u := master.URL + rel.Dir + "SHA256SUMS"
	body, err := httpGet(u)
	if err != nil {
		return err
	}
	m, err := manifest.Parse(bytes.NewReader(body), "SHA256SUMS")
	if err != nil {
		return err
	}
	var files []store.ReleaseFile
	for _, e := range m.Entries() {
		files = append(files, store.ReleaseFile{Path: e.Path, Size: int64(len(rel.Files[e.Path])), Algo: string(e.Algo), Hash: e.Hash})
	}
	_, err = st.SaveRelease(ctx, rel.Name, u, sha256Hex(body), files, store.ManifestValidators{})
	return err
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// errBadSweep is a sweep whose report says it did not check what it should.
var errBadSweep = errors.New("the sweep did not check what it should")
