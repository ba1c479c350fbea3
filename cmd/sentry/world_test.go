package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
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
	// mirrors are the ids of the mirrors registered, by name.
	mirrors map[string]int
	// daemonEnv is added to the environment of the daemons started.
	daemonEnv []string
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
	w.product(t, "Firefox-1.5", nil, location{"win", "/firefox/releases/1.5/win32/xpi/lang-:lang.xpi"})
	for _, m := range mirrors {
		w.addMirror(t, &factory.MirrorOpts{Name: m.Name, BaseURL: m.URL})
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
	w := &world{dbURL: pgtest.NewDB(t), rel: rel, master: master, mirrors: map[string]int{}}
	w.cfg = filepath.Join(t.TempDir(), "config.yaml")
	return w
}

// connect opens a connection to the world's database: the caller closes
// it.
func (w *world) connect(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), w.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// location is a bouncer location: the name of its operating system and
// its path.
type location struct{ os, path string }

// product registers a bouncer product with its languages (none: every
// language) and its locations (package factory).
func (w *world) product(t *testing.T, name string, langs []string, locations ...location) {
	t.Helper()
	ctx := context.Background()
	conn := w.connect(t)
	defer conn.Close(ctx)
	p := factory.Product(ctx, t, conn, &factory.ProductOpts{Name: name, Langs: langs})
	oses := map[string]int{}
	for _, l := range locations {
		if oses[l.os] == 0 {
			oses[l.os] = factory.OS(ctx, t, conn, &factory.OSOpts{Name: l.os}).ID
		}
		factory.Location(ctx, t, conn, &factory.LocationOpts{ProductID: p.ID, OSID: oses[l.os], Path: l.path})
	}
}

// addMirror registers a mirror (package factory), in region 1 unless
// opts says otherwise, and returns its id.
func (w *world) addMirror(t *testing.T, opts *factory.MirrorOpts) int {
	t.Helper()
	ctx := context.Background()
	conn := w.connect(t)
	defer conn.Close(ctx)
	o := *opts
	if o.Regions == nil {
		o.Regions = []int{1}
	}
	id := factory.Mirror(ctx, t, conn, &o).ID
	w.mirrors[o.Name] = id
	return id
}

// settings writes a mirror's sentry_mirror_settings row (package factory).
func (w *world) settings(t *testing.T, opts *factory.MirrorSettingsOpts) {
	t.Helper()
	ctx := context.Background()
	conn := w.connect(t)
	defer conn.Close(ctx)
	factory.MirrorSettings(ctx, t, conn, opts)
}

func (w *world) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	conn := w.connect(t)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

func (w *world) query(t *testing.T, sql string, dest ...any) {
	t.Helper()
	conn := w.connect(t)
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

// startDaemonConfig starts `sentry run` with config file cfg, in this
// process's environment and w.daemonEnv.
func (w *world) startDaemonConfig(t *testing.T, name, cfg string) *daemonProc {
	t.Helper()
	cmd := exec.Command(binary(t), "run", "--config", cfg)
	if len(w.daemonEnv) > 0 {
		cmd.Env = append(os.Environ(), w.daemonEnv...)
	}
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

// runSentry runs the binary with args and the config, bounded in time, and
// returns its stdout, stderr and exit code.
func runSentry(t *testing.T, cfg string, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), append(args, "--config", cfg)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("sentry %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("sentry %v did not end in time:\n%s", args, stderr.String())
	}
	return stdout.String(), stderr.String(), code
}

// runBinary runs the binary with args and env (PATH added) and returns its
// combined output and exit code.
func runBinary(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return string(out), 0
}
