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

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
	kit "github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// TestMain runs the tests on a throwaway cluster, then removes the binary
// they ran.
func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string // holds binPath; removed when the tests end
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
		binDir, binPath = dir, filepath.Join(dir, "sentry")
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

// world is the site of these tests (a fresh database, a master serving
// rel and the path of the config file) and the daemons' environment.
type world struct {
	*kit.Site
	// daemonEnv is added to the environment of the daemons started.
	daemonEnv []string
}

// location is a bouncer location: its operating system and its path.
type location = kit.Location

// newSweepingWorld is newWorld with one static mirror, "m", holding the
// release, primed, and a schedule on which daemons sweep every second.
func newSweepingWorld(t *testing.T) (*world, *localmirror.Server) {
	t.Helper()
	m, err := localmirror.NewStatic("m", &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	w := newWorld(t, "schedule:\n  sweep: \"@every 1s\"\n  deep_sweep: \"0 0 1 1 *\"\n", m)
	m.PutRelease(w.Rel)
	w.sentry(t, "prime", "--release", "1.5")
	return w, m
}

// newWorld is a database holding one product with one location (and the
// mirrors), a master serving release 1.5 and a config file.
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
%s`, w.DBURL, w.Master.URL, extraConfig)
	if err := os.WriteFile(w.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	w.sentry(t, "db", "migrate")
	w.Product(t, "Firefox-1.5", nil, location{OS: "win", Path: "/firefox/releases/1.5/win32/xpi/lang-:lang.xpi"})
	for _, m := range mirrors {
		w.AddMirror(t, &factory.MirrorOpts{Name: m.Name, BaseURL: m.URL})
	}
	return w
}

// newBareWorld is a fresh database and a master serving rel; the config
// file (w.Config) is the caller's to write.
func newBareWorld(t *testing.T, rel *localmirror.Release) *world {
	t.Helper()
	return &world{Site: kit.NewSite(t, rel)}
}

// sentry runs a command to completion and fails the test unless it exits 0.
func (w *world) sentry(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary(t), append(args, "--config", w.Config)...)
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
	return w.startDaemonConfig(t, name, w.Config)
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
