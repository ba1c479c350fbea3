package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the sentry binary once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sentry-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sentry")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// world is a database holding one product with one location, a master
// serving release 1.5 and a config file; primed once through the binary.
type world struct {
	dbURL  string
	cfg    string
	rel    *localmirror.Release
	master *localmirror.Server
}

func newWorld(t *testing.T, extraConfig string, mirrors ...*localmirror.Server) *world {
	t.Helper()
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{}}
	for i := range 6 {
		p := fmt.Sprintf("win32/xpi/lang-%d.xpi", i)
		rel.Files[p] = localmirror.Content(p, 4000)
	}
	w := newBareWorld(t, rel)
	cfg := fmt.Sprintf(`database:
  url: %s
master:
  url: %s
releases:
  dir: /firefox/releases/{release}/
  products: ["Firefox-{release}"]
  default_langs: ["0", "1", "2", "3", "4", "5"]
checks:
  contact: ops@example.org
  per_mirror_rate: 100000
  retries: 0
http:
  listen: 127.0.0.1:0
hook:
  secret: hook-secret-of-the-tests
shutdown_grace: 2s
%s`, w.dbURL, w.master.URL, extraConfig)
	if err := os.WriteFile(w.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	w.sentry(t, "db", "migrate")
	w.exec(t, `WITH p AS (INSERT INTO mirror_products (name) VALUES ('Firefox-1.5') RETURNING id),
		o AS (INSERT INTO mirror_os (name) VALUES ('win') RETURNING id)
		INSERT INTO mirror_locations (product_id, os_id, path) SELECT p.id, o.id, '/firefox/releases/1.5/win32/xpi/lang-:lang.xpi' FROM p, o`)
	for _, m := range mirrors {
		w.exec(t, `INSERT INTO mirror_mirrors (name, baseurl) VALUES ($1, $2)`, m.Name, m.URL)
	}
	return w
}

// newBareWorld is a fresh database and a master serving rel; the config
// file (w.cfg) is the caller's to write.
func newBareWorld(t *testing.T, rel *localmirror.Release) *world {
	t.Helper()
	master, err := localmirror.NewMaster(rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	w := &world{dbURL: pgtest.NewDB(t), rel: rel, master: master}
	w.cfg = filepath.Join(t.TempDir(), "config.yaml")
	return w
}

func (w *world) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), w.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

func (w *world) query(t *testing.T, sql string, dest ...any) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), w.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(), sql).Scan(dest...); err != nil {
		t.Fatal(err)
	}
}

// sentry runs a command to completion and fails the test unless it exits 0.
func (w *world) sentry(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary(t), append(args, "--config", w.cfg)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sentry %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// daemonProc is a running `sentry run` whose log lines are streamed.
type daemonProc struct {
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	log   strings.Builder
	// exited is closed when the process has ended; err is its Wait error.
	exited chan struct{}
	err    error
}

func (w *world) startDaemon(t *testing.T, name string) *daemonProc {
	t.Helper()
	return w.startDaemonConfig(t, name, w.cfg)
}

// startDaemonConfig starts `sentry run` with config file cfg.
func (w *world) startDaemonConfig(t *testing.T, name, cfg string) *daemonProc {
	t.Helper()
	cmd := exec.Command(binary(t), "run", "--config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{cmd: cmd, lines: make(chan string, 1024), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := name + ": " + sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- line:
			default:
			}
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	return p
}

// listenAddr is the address the daemon logged it listens on.
func (p *daemonProc) listenAddr(t *testing.T) string {
	t.Helper()
	for _, l := range strings.Split(p.logText(), "\n") {
		if _, rest, ok := strings.Cut(l, "listen="); ok && strings.Contains(l, "sentry run started") {
			return strings.Fields(rest)[0]
		}
	}
	t.Fatalf("no listen address logged:\n%s", p.logText())
	return ""
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

func (p *daemonProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// stop sends SIGTERM and returns the exit error (nil for exit 0).
func (p *daemonProc) stop(t *testing.T) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		return p.err
	case <-time.After(60 * time.Second):
		t.Fatalf("sentry run did not exit after SIGTERM:\n%s", p.logText())
	}
	return nil
}

func TestTwoDaemonsRunEachSweepOnce(t *testing.T) {
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/"}
	m, err := localmirror.NewStatic("m", rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	w := newWorld(t, "schedule:\n  sweep: \"@every 1s\"\n  deep_sweep: \"0 0 1 1 *\"\n", m)
	m.PutRelease(w.rel)
	w.sentry(t, "prime", "--release", "1.5")

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
	w.query(t, `SELECT count(*), count(DISTINCT slot) FROM sentry_runs WHERE kind = 'sweep'`, &runs, &slots)
	w.query(t, `SELECT count(*) FROM sentry_runs r1 JOIN sentry_runs r2 ON r1.id < r2.id
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
	w.query(t, `SELECT count(*) FROM sentry_runs WHERE outcome = 'running'`, &interrupted)
	if interrupted != 0 {
		t.Errorf("%d runs left 'running' after both daemons stopped", interrupted)
	}
}

func TestDaemonSIGTERMMidSweepKeepsCompletedChecks(t *testing.T) {
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/"}
	m, err := localmirror.NewStatic("m", rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	w := newWorld(t, "schedule:\n  sweep: \"@every 1s\"\n  deep_sweep: \"0 0 1 1 *\"\n", m)
	m.PutRelease(w.rel)
	w.sentry(t, "prime", "--release", "1.5")
	// One request at a time to this mirror, so that the order is fixed.
	w.exec(t, `INSERT INTO sentry_mirror_settings (mirror_id, max_concurrency) SELECT id, 1 FROM mirror_mirrors`)
	// Checks are counted by the hour (those that found what was known
	// have no row of their own): what the sweep adds is what it stored.
	var primed int
	w.query(t, `SELECT coalesce(sum(n), 0) FROM sentry_check_hourly`, &primed)

	// From now on, the mirror answers until the fourth file, which hangs
	// until sentry gives up on it.
	var answered atomic.Int64
	var sweeping atomic.Bool
	sweeping.Store(true)
	blocked := make(chan struct{})
	var once sync.Once
	m.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		if !sweeping.Load() {
			return false
		}
		if strings.HasSuffix(r.URL.Path, "lang-3.xpi") {
			once.Do(func() { close(blocked) })
			<-r.Context().Done()
			return true
		}
		return false
	})
	m.HandleFunc(func(w http.ResponseWriter, r *http.Request) bool {
		answered.Add(1) // outermost: counts every request answered
		return false
	})

	d := w.startDaemon(t, "d")
	select {
	case <-blocked:
	case <-d.exited:
		t.Fatalf("daemon exited: %v\n%s", d.err, d.logText())
	case <-time.After(90 * time.Second):
		t.Fatalf("the sweep never reached the hanging file:\n%s", d.logText())
	}
	before := answered.Load() - 1 // the hanging request is not answered
	if err := d.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, d.logText())
	}
	var checks, runs int
	var outcome string
	w.query(t, `SELECT count(*) FROM sentry_runs WHERE kind = 'sweep'`, &runs)
	w.query(t, `SELECT outcome FROM sentry_runs WHERE kind = 'sweep' ORDER BY id DESC LIMIT 1`, &outcome)
	w.query(t, `SELECT coalesce(sum(n), 0) FROM sentry_check_hourly`, &checks)
	checks -= primed
	if runs != 1 || outcome != "interrupted" {
		t.Errorf("%d sweep runs, the last %s; want one, interrupted:\n%s", runs, outcome, d.logText())
	}
	if int64(checks) != before || checks < 2 {
		t.Errorf("%d checks stored, but the mirror answered %d before the stop", checks, before)
	}
	if !strings.Contains(d.logText(), "grace over") {
		t.Errorf("the hanging check was not cancelled at the end of the grace:\n%s", d.logText())
	}
}
