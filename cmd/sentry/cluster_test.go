package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// vantageCfg writes a config for one sentry of a cluster test: the world's
// config with its own vantage point and source address, two mirrors at a
// time (one request each), short leases, and state that follows a single
// sweep.
func (w *world) vantageCfg(t *testing.T, vantage, source string) string {
	t.Helper()
	base, err := os.ReadFile(w.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(base), "checks:\n", fmt.Sprintf(
		"checks:\n  source_address: %s\n  concurrency: 2\n  per_mirror_concurrency: 1\n", source), 1)
	cfg += fmt.Sprintf("vantage: %s\ncluster:\n  lease: 3s\n  poll: 200ms\nstate:\n  down_after: 1\n  up_after: 1\n", vantage)
	path := filepath.Join(t.TempDir(), vantage+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// gate holds the file requests of one sweep: a mirror's requests for a
// path are counted, and the n-th request of every path waits while gate
// n is closed.
type gate struct {
	mu     sync.Mutex
	counts map[string]int // mirror + path → requests
	closed map[int]chan struct{}
}

func newGate(sweeps ...int) *gate {
	g := &gate{counts: map[string]int{}, closed: map[int]chan struct{}{}}
	for _, n := range sweeps {
		g.closed[n] = make(chan struct{})
	}
	return g
}

// wait counts a request and holds it while its gate is closed (or until
// the client goes away).
func (g *gate) wait(r *http.Request, mirror string) {
	g.mu.Lock()
	g.counts[mirror+r.URL.Path]++
	ch := g.closed[g.counts[mirror+r.URL.Path]]
	g.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-r.Context().Done():
	}
}

func (g *gate) open(n int) { close(g.closed[n]) }

// refuse makes m drop, unanswered, every connection from the given source
// addresses: unreachable from those vantage points only.
func refuse(m *localmirror.Server, sources ...string) {
	m.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if !slices.Contains(sources, host) {
			return false
		}
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler)
	})
}

// pollDB runs query until it returns true (a condition of the database
// that other processes bring about), failing after four minutes: several
// race-built processes lining up on a loaded two-core machine take a
// while, and no test depends on how long.
func (w *world) pollDB(t *testing.T, what string, cond func(conn *pgx.Conn) (bool, error), procs ...*daemonProc) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), w.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(4 * time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond(conn)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, p := range procs {
				logs.WriteString(p.logText())
			}
			t.Fatalf("timed out waiting for %s:\n%s", what, logs.String())
		}
		for _, p := range procs {
			select {
			case <-p.exited:
				if p.cmd.ProcessState != nil && p.cmd.ProcessState.Success() {
					continue
				}
				if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					continue // killed by the test
				}
				t.Fatalf("a sentry exited while waiting for %s: %v\n%s", what, p.err, p.logText())
			default:
			}
		}
		<-tick.C
	}
}

func TestTwoDaemonsRunEachSweepOnce(t *testing.T) {
	t.Parallel()
	w, _ := newSweepingWorld(t)

	a := w.startDaemon(t, "a")
	b := w.startDaemon(t, "b")
	// Wait for four sweeps done between them, reading their logs (bounded).
	done := 0
	timeout := time.After(90 * time.Second)
	for done < 4 {
		select {
		case l := <-a.lines:
			if strings.Contains(l, "sweep done") {
				done++
			}
		case l := <-b.lines:
			if strings.Contains(l, "sweep done") {
				done++
			}
		case <-a.exited:
			t.Fatalf("daemon a exited: %v\n%s", a.err, a.logText())
		case <-b.exited:
			t.Fatalf("daemon b exited: %v\n%s", b.err, b.logText())
		case <-timeout:
			t.Fatalf("only %d sweeps done:\n%s%s", done, a.logText(), b.logText())
		}
	}
	// Each daemon serves the status page, its API and its metrics; the
	// sweeps they ran between them are counted there.
	completed := 0.0
	for _, p := range []*daemonProc{a, b} {
		addr := p.listenAddr(t)
		for _, path := range []string{"/", "/mirrors/m", "/releases/1.5", "/api/mirrors", "/healthz"} {
			if code, body := httpGet(t, "http://"+addr+path); code != 200 {
				t.Errorf("GET %s: %d %s", path, code, body)
			}
		}
		_, metrics := httpGet(t, "http://"+addr+"/metrics")
		if !strings.Contains(metrics, `sentry_mirrors{state="up"} 1`) {
			t.Errorf("/metrics lacks the mirror up:\n%s", metrics)
		}
		for _, l := range strings.Split(metrics, "\n") {
			if v, ok := strings.CutPrefix(l, `sentry_runs_total{kind="sweep",outcome="completed"} `); ok {
				n, _ := strconv.ParseFloat(v, 64)
				completed += n
			}
		}
	}
	if completed < 4 {
		t.Errorf("/metrics of both daemons count %v completed sweeps, want at least 4", completed)
	}
	for _, p := range []*daemonProc{a, b} {
		if err := p.stop(t); err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, p.logText())
		}
	}
	var runs, slots, overlaps int
	w.Query(t, `SELECT count(*), count(DISTINCT slot) FROM sentry_runs WHERE kind = 'sweep'`, &runs, &slots)
	w.Query(t, `SELECT count(*) FROM sentry_runs r1 JOIN sentry_runs r2 ON r1.id < r2.id
		WHERE r1.kind LIKE '%sweep' AND r2.kind LIKE '%sweep'
		  AND r1.started_at < coalesce(r2.finished_at, now()) AND r2.started_at < coalesce(r1.finished_at, now())`, &overlaps)
	if runs < 4 || runs != slots {
		t.Errorf("%d sweep runs for %d slots: each slot must run once", runs, slots)
	}
	if overlaps != 0 {
		t.Errorf("%d pairs of sweeps overlapped", overlaps)
	}
	logs := a.logText() + b.logText()
	// The daemon that did not create a slot's sweep says it helps with it.
	helped := false
	for _, l := range strings.Split(logs, "\n") {
		helped = helped || (strings.Contains(l, "this one helps") && strings.Contains(l, "job=sweep"))
	}
	if !helped {
		t.Errorf("no daemon logged, with the job's name, that it helps with a sweep another created:\n%s", logs)
	}
	var interrupted int
	w.Query(t, `SELECT count(*) FROM sentry_runs WHERE outcome = 'running'`, &interrupted)
	if interrupted != 0 {
		t.Errorf("%d runs left 'running' after both daemons stopped", interrupted)
	}
}

// TestThreeVantagePointsShareSweeps runs three `sentry run` processes, at
// vantage points us, eu and ap (source addresses 127.0.0.2-4), on one
// database and nine mirrors, of which m8 refuses eu and m9 refuses eu and
// ap. In the first sweep every process holds mirrors at once (each file
// request waits until all three hold work), every mirror's files are
// checked once and its reachability once from each vantage point; m8,
// failing from one vantage point of three, stays up and is reported
// partially unreachable; m9, failing from two, goes down. In the second,
// ap is killed while it holds mirrors: the others take them over after the
// lease and the sweep completes with every file checked.
func TestThreeVantagePointsShareSweeps(t *testing.T) {
	t.Parallel()
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/"}
	var mirrors []*localmirror.Server
	for i := 1; i <= 9; i++ {
		m, err := localmirror.NewStatic(fmt.Sprintf("m%d", i), rel)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		mirrors = append(mirrors, m)
	}
	w := newWorld(t, "schedule:\n  sweep: \"@every 2s\"\n  deep_sweep: \"0 0 1 1 *\"\n", mirrors...)
	sources := map[string]string{"us": "127.0.0.2", "eu": "127.0.0.3", "ap": "127.0.0.4"}
	cfgs := map[string]string{}
	for v, src := range sources {
		cfgs[v] = w.vantageCfg(t, v, src)
	}
	for _, m := range mirrors {
		m.PutRelease(w.Rel)
	}
	// Primed from us (a vantage point of the cluster: the default quorum
	// counts every vantage point seen in the last hour).
	if out, err := exec.Command(binary(t), "prime", "--release", "1.5", "--config", cfgs["us"]).CombinedOutput(); err != nil {
		t.Fatalf("prime: %v\n%s", err, out)
	}

	g := newGate(1, 2)
	for _, m := range mirrors {
		m.HandleFunc(func(_ http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, w.Rel.Dir) {
				g.wait(r, m.Name)
			}
			return false
		})
	}
	refuse(mirrors[7], sources["eu"])
	refuse(mirrors[8], sources["eu"], sources["ap"])

	// Sweeps find no mirror until the three have started, so that the
	// first sweep with mirrors has all three vantage points.
	w.Exec(t, `UPDATE mirror_mirrors SET active = false`)
	procs := map[string]*daemonProc{}
	var all []*daemonProc
	for _, v := range []string{"us", "eu", "ap"} {
		p := w.startDaemonConfig(t, v, cfgs[v])
		procs[v] = p
		all = append(all, p)
	}
	instances := map[string]string{} // vantage → instance id
	w.pollDB(t, "three daemons registered", func(c *pgx.Conn) (bool, error) {
		rows, err := c.Query(context.Background(), `SELECT vantage, id FROM sentry_instances
			WHERE role = 'daemon' AND stopped_at IS NULL`)
		if err != nil {
			return false, err
		}
		m, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ V, ID string }])
		if err != nil {
			return false, err
		}
		for _, r := range m {
			instances[r.V] = r.ID
		}
		return len(instances) == 3, nil
	}, all...)
	w.Exec(t, `UPDATE mirror_mirrors SET active = true`)

	// Sweep 1: all three hold mirrors while the files wait.
	var run1 int64
	w.pollDB(t, "the first sweep of nine mirrors held by all three", func(c *pgx.Conn) (bool, error) {
		var holders int
		err := c.QueryRow(context.Background(), `SELECT r.id, count(DISTINCT w.claimed_by)
			FROM sentry_runs r JOIN sentry_work w ON w.run_id = r.id
			WHERE r.kind = 'sweep' AND (SELECT count(*) FROM sentry_work x WHERE x.run_id = r.id) = 9
			GROUP BY r.id ORDER BY r.id LIMIT 1`).Scan(&run1, &holders)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return holders == 3, err
	}, all...)
	var vantages []string
	w.Query(t, fmt.Sprintf(`SELECT array_agg(DISTINCT v ORDER BY v) FROM sentry_work, unnest(vantages) v WHERE run_id = %d`, run1), &vantages)
	if !slices.Equal(vantages, []string{"ap", "eu", "us"}) {
		t.Fatalf("sweep %d was shared by vantage points %v, want ap, eu, us", run1, vantages)
	}
	g.open(1)
	waitRunEnded(t, w, run1, all...)

	var outcome string
	var doneBy, rows int
	w.Query(t, fmt.Sprintf(`SELECT r.outcome, count(DISTINCT w.done_by), count(*)
		FROM sentry_runs r JOIN sentry_work w ON w.run_id = r.id WHERE r.id = %d GROUP BY r.outcome`, run1),
		&outcome, &doneBy, &rows)
	if outcome != "completed" || rows != 9 || doneBy != 3 {
		t.Errorf("sweep %d: %s, %d rows whose files were done by %d sentries; want completed, 9 rows, 3 sentries",
			run1, outcome, rows, doneBy)
	}
	// Each file checked once (the mirrors counted the requests they
	// answered), each mirror's reachability once from each vantage point
	// (every row holds a verdict of each), and every row's sums say its
	// six files were checked.
	g.mu.Lock()
	for _, m := range mirrors {
		for _, p := range w.Rel.Paths() {
			n := 0
			for k, c := range g.counts { // keys are mirror + request path (under the mirror's base path)
				if strings.HasPrefix(k, m.Name+"/") && strings.HasSuffix(k, w.Rel.Dir+p) {
					n += c
				}
			}
			if n != 1 {
				t.Errorf("sweep %d: %s %s requested %d times, want once", run1, m.Name, p, n)
			}
		}
	}
	g.mu.Unlock()
	var verdicts, checked int
	w.Query(t, fmt.Sprintf(`SELECT sum((SELECT count(*) FROM jsonb_object_keys(w.verdicts))),
		sum((coalesce(r.results -> w.mirror_id::text, w.result) -> 'sums' ->> 'checked')::int)
		FROM sentry_work w JOIN sentry_runs r ON r.id = w.run_id WHERE w.run_id = %d`, run1), &verdicts, &checked)
	if verdicts != 9*3 || checked != 9*6 {
		t.Errorf("sweep %d: %d reachability verdicts and %d files checked; want 9×3 and 9×6", run1, verdicts, checked)
	}
	for _, m := range mirrors {
		if s := m.Stats(); s.MaxInFlight > 1 {
			t.Errorf("%s saw %d requests at once; per_mirror_concurrency is 1 across the three", m.Name, s.MaxInFlight)
		}
	}

	rep := reportMirrors(t, cfgs["us"])
	for name, want := range map[string]struct {
		state   string
		partial bool
		failing []string
	}{
		"m1": {"up", false, []string{}},
		"m8": {"up", true, []string{"eu"}},
		"m9": {"down", false, []string{"ap", "eu"}},
	} {
		got, ok := rep[name]
		if !ok {
			t.Errorf("%s missing from the report", name)
			continue
		}
		if got.State != want.state || got.Partial != want.partial || !slices.Equal(got.FailingFrom, want.failing) {
			t.Errorf("%s: state %s, partial %v, failing from %v; want %s, %v, %v",
				name, got.State, got.Partial, got.FailingFrom, want.state, want.partial, want.failing)
		}
	}
	var healthy8, healthy9 bool
	w.Query(t, `SELECT bool_and(l.healthy) FILTER (WHERE m.name = 'm8'), bool_or(l.healthy) FILTER (WHERE m.name = 'm9')
		FROM mirror_location_mirror_map l JOIN mirror_mirrors m ON m.id = l.mirror_id`, &healthy8, &healthy9)
	if !healthy8 || healthy9 {
		t.Errorf("bouncer: m8 healthy %v (want true: one vantage point of three), m9 healthy %v (want false: two of three)",
			healthy8, healthy9)
	}

	// Sweep 2: ap dies holding mirrors.
	var run2 int64
	var apHeld []int
	w.pollDB(t, "the second sweep held by all three", func(c *pgx.Conn) (bool, error) {
		var holders int
		err := c.QueryRow(context.Background(), `SELECT r.id, count(DISTINCT w.claimed_by)
			FROM sentry_runs r JOIN sentry_work w ON w.run_id = r.id
			WHERE r.kind = 'sweep' AND r.id > $1 AND (SELECT count(*) FROM sentry_work x WHERE x.run_id = r.id) = 9
			GROUP BY r.id ORDER BY r.id LIMIT 1`, run1).Scan(&run2, &holders)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		if err != nil || holders < 3 {
			return false, err
		}
		rows, err := c.Query(context.Background(), `SELECT mirror_id FROM sentry_work
			WHERE run_id = $1 AND claimed_by = $2 ORDER BY mirror_id`, run2, instances["ap"])
		if err != nil {
			return false, err
		}
		apHeld, err = pgx.CollectRows(rows, pgx.RowTo[int])
		return len(apHeld) > 0, err
	}, all...)
	if err := procs["ap"].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-procs["ap"].exited
	g.open(2)
	waitRunEnded(t, w, run2, procs["us"], procs["eu"])

	w.Query(t, fmt.Sprintf(`SELECT outcome FROM sentry_runs WHERE id = %d`, run2), &outcome)
	if outcome != "completed" {
		t.Errorf("sweep %d after ap died: %s, want completed", run2, outcome)
	}
	w.Query(t, fmt.Sprintf(`SELECT sum((coalesce(r.results -> w.mirror_id::text, w.result) -> 'sums' ->> 'checked')::int)
		FROM sentry_work w JOIN sentry_runs r ON r.id = w.run_id WHERE w.run_id = %d`, run2), &checked)
	if checked != 9*6 {
		t.Errorf("sweep %d: %d files checked after ap died, want all 9×6", run2, checked)
	}
	conn, err := pgx.Connect(context.Background(), w.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rs, err := conn.Query(context.Background(), `SELECT mirror_id, coalesce(done_by, ''), claims, files_done
		FROM sentry_work WHERE run_id = $1`, run2)
	if err != nil {
		t.Fatal(err)
	}
	type workRow struct {
		Mirror    int
		DoneBy    string
		Claims    int
		FilesDone bool
	}
	work, err := pgx.CollectRows(rs, pgx.RowToStructByPos[workRow])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range work {
		if !r.FilesDone || r.DoneBy == "" || r.DoneBy == instances["ap"] {
			t.Errorf("sweep %d, mirror %d: files done %v by %q; want done by us or eu", run2, r.Mirror, r.FilesDone, r.DoneBy)
		}
		if slices.Contains(apHeld, r.Mirror) && r.Claims < 2 {
			t.Errorf("sweep %d, mirror %d: ap held it when killed, yet it was claimed %d time(s)", run2, r.Mirror, r.Claims)
		}
	}
	logs := procs["us"].logText() + procs["eu"].logText()
	if !strings.Contains(logs, "taking over work") {
		t.Errorf("no takeover logged:\n%s", logs)
	}
	// The daemon that created sweep 1 saw it end, whoever judged it; the
	// others logged that they helped.
	doneLogged := false
	for _, l := range strings.Split(logs+procs["ap"].logText(), "\n") {
		if strings.Contains(l, `msg="sweep done"`) && strings.Contains(l, fmt.Sprintf(" run=%d ", run1)) &&
			strings.Contains(l, "outcome=completed") {
			doneLogged = true
		}
	}
	if !doneLogged {
		t.Errorf("no daemon logged sweep %d done:\n%s", run1, logs)
	}
	if !strings.Contains(logs, "this one helps") {
		t.Errorf("no daemon logged helping with a sweep another created:\n%s", logs)
	}
	for _, v := range []string{"us", "eu"} {
		if err := procs[v].stop(t); err != nil {
			t.Errorf("%s: exit after SIGTERM: %v\n%s", v, err, procs[v].logText())
		}
	}
	var running int
	w.Query(t, `SELECT count(*) FROM sentry_runs WHERE outcome = 'running'`, &running)
	if running != 0 {
		t.Errorf("%d runs left running after every sentry stopped", running)
	}
}

func waitRunEnded(t *testing.T, w *world, run int64, procs ...*daemonProc) {
	t.Helper()
	w.pollDB(t, fmt.Sprintf("sweep %d to end", run), func(c *pgx.Conn) (bool, error) {
		var outcome string
		err := c.QueryRow(context.Background(), `SELECT outcome FROM sentry_runs WHERE id = $1`, run).Scan(&outcome)
		return outcome != "running", err
	}, procs...)
}

type reportRow struct {
	Name        string   `json:"name"`
	State       string   `json:"state"`
	Partial     bool     `json:"partial"`
	FailingFrom []string `json:"failing_from"`
}

// reportMirrors runs `sentry report --format json` and returns its rows by
// mirror name.
func reportMirrors(t *testing.T, cfg string) map[string]reportRow {
	t.Helper()
	out, err := exec.Command(binary(t), "report", "--format", "json", "--config", cfg).Output()
	if err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	var rep struct {
		Mirrors []reportRow `json:"mirrors"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	byName := map[string]reportRow{}
	for _, r := range rep.Mirrors {
		byName[r.Name] = r
	}
	return byName
}

// TestPrimeSplitsAcrossRunningSentries: `sentry prime` started beside two
// `sentry run` processes shares the release's mirrors with them (each of
// the three holds mirrors at once: every file waits until they do), waits
// for the whole release and prints the usual summary of every mirror.
func TestPrimeSplitsAcrossRunningSentries(t *testing.T) {
	t.Parallel()
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/"}
	var mirrors []*localmirror.Server
	for i := 1; i <= 6; i++ {
		m, err := localmirror.NewStatic(fmt.Sprintf("m%d", i), rel)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		mirrors = append(mirrors, m)
	}
	w := newWorld(t, "schedule:\n  sweep: \"0 0 1 1 *\"\n  deep_sweep: \"0 0 1 1 *\"\n", mirrors...)
	g := newGate(1)
	for _, m := range mirrors {
		m.PutRelease(w.Rel)
		m.HandleFunc(func(_ http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, w.Rel.Dir) {
				g.wait(r, m.Name)
			}
			return false
		})
	}
	us := w.startDaemonConfig(t, "us", w.vantageCfg(t, "us", "127.0.0.2"))
	eu := w.startDaemonConfig(t, "eu", w.vantageCfg(t, "eu", "127.0.0.3"))
	w.pollDB(t, "two daemons registered", func(c *pgx.Conn) (bool, error) {
		var n int
		err := c.QueryRow(context.Background(), `SELECT count(*) FROM sentry_instances WHERE role = 'daemon' AND stopped_at IS NULL`).Scan(&n)
		return n == 2, err
	}, us, eu)

	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := exec.Command(binary(t), "prime", "--release", "1.5", "--format", "json",
			"--config", w.vantageCfg(t, "ap", "127.0.0.4")).Output()
		done <- result{out, err}
	}()
	var run int64
	w.pollDB(t, "the prime held by the command and both daemons", func(c *pgx.Conn) (bool, error) {
		var holders int
		err := c.QueryRow(context.Background(), `SELECT r.id, count(DISTINCT w.claimed_by)
			FROM sentry_runs r JOIN sentry_work w ON w.run_id = r.id WHERE r.kind = 'prime'
			GROUP BY r.id ORDER BY r.id LIMIT 1`).Scan(&run, &holders)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return holders == 3, err
	}, us, eu)
	g.open(1)
	var res result
	select {
	case res = <-done:
	case <-time.After(4 * time.Minute):
		t.Fatalf("the prime did not end:\n%s%s", us.logText(), eu.logText())
	}
	if res.err != nil {
		t.Fatalf("prime: %v\n%s", res.err, res.out)
	}
	var rep struct {
		RunID   int64  `json:"run_id"`
		Outcome string `json:"outcome"`
		Mirrors []struct {
			Name    string `json:"name"`
			State   string `json:"state"`
			FilesOK int    `json:"files_ok"`
			Marked  bool   `json:"marked"`
		} `json:"mirrors"`
	}
	if err := json.Unmarshal(res.out, &rep); err != nil {
		t.Fatalf("prime output: %v\n%s", err, res.out)
	}
	if rep.RunID != run || rep.Outcome != "completed" || len(rep.Mirrors) != 6 {
		t.Errorf("prime summary: run %d, %s, %d mirrors; want run %d, completed, 6:\n%s", rep.RunID, rep.Outcome, len(rep.Mirrors), run, res.out)
	}
	for _, m := range rep.Mirrors {
		if m.State != "ok" || m.FilesOK != 6 || !m.Marked {
			t.Errorf("%s: %+v, want ok with 6 files, marked", m.Name, m)
		}
	}
	var doneBy, daemons, gets int
	w.Query(t, fmt.Sprintf(`SELECT count(DISTINCT w.done_by), count(DISTINCT w.done_by) FILTER (WHERE i.role = 'daemon')
		FROM sentry_work w JOIN sentry_instances i ON i.id = w.done_by WHERE w.run_id = %d`, run), &doneBy, &daemons)
	if doneBy != 3 || daemons != 2 {
		t.Errorf("the prime's mirrors were done by %d sentries, %d of them daemons; want 3 and 2", doneBy, daemons)
	}
	w.Query(t, fmt.Sprintf(`SELECT count(DISTINCT (mirror_id, path)) FROM sentry_checks WHERE run_id = %d AND method = 'GET'`, run), &gets)
	if gets != 6*6 {
		t.Errorf("%d files fetched in the prime, want 6×6", gets)
	}
	for _, p := range []*daemonProc{us, eu} {
		if err := p.stop(t); err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, p.logText())
		}
	}
}
