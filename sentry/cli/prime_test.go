package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/demo/localmirror"
)

// primeWorld is a migrated database with one product and location, a master
// serving release 1.5, and a config file; mirrors are added by the test.
type primeWorld struct{ *world.Site }

func setupPrime(t *testing.T) *primeWorld {
	t.Helper()
	rel := &localmirror.Release{Name: "1.5", Dir: "/firefox/releases/1.5/", Files: map[string][]byte{
		"win32/Firefox Setup 1.5.exe": localmirror.Content("a", 50_000),
		"notes.txt":                   localmirror.Content("b", 1_000),
	}}
	w := &primeWorld{world.NewSite(t, rel)}
	w.Config = writeConfigWith(t, w.DBURL, w.Master.URL)
	if code, out, errs := run(t, nil, "db", "migrate", "--config", w.Config); code != ExitOK {
		t.Fatalf("migrate: %d %s %s", code, out, errs)
	}
	w.Product(t, "Firefox-1.5", nil, world.Location{OS: "win", Path: "/firefox/releases/1.5/win32/Firefox Setup 1.5.exe"})
	return w
}

// writeConfigWith is writeConfig with a real master and fast checks.
func writeConfigWith(t *testing.T, dbURL, masterURL string) string {
	t.Helper()
	path := writeConfig(t, dbURL, "prime:\n  deadline: 1s\n  poll_interval: 10ms\n  poll_max: 20ms\n")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), "http://127.0.0.1:1/pub", masterURL, 1))
	data = []byte(strings.Replace(string(data), "  contact: ops@example.org\n", "  contact: ops@example.org\n  per_mirror_rate: 100000\n  retries: 0\n  retry_wait_min: 1ms\n  retry_wait_max: 5ms\n", 1))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mirror registers an active mirror.
func (w *primeWorld) mirror(t *testing.T, name, url string) {
	t.Helper()
	w.AddMirror(t, &factory.MirrorOpts{Name: name, BaseURL: url})
}

// goodMirror starts a mirror holding the whole release and registers it.
func (w *primeWorld) goodMirror(t *testing.T, name string) {
	t.Helper()
	w.mirror(t, name, world.Static(t, name, w.Rel).URL)
}

func TestPrimeCommandCompletes(t *testing.T) {
	t.Parallel()
	w := setupPrime(t)
	w.goodMirror(t, "good")

	code, stdout, stderr := run(t, nil, "prime", "--config", w.Config, "--release", "1.5", "--format", "json")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	var rep struct {
		Outcome string `json:"outcome"`
		Mirrors []struct {
			Name    string `json:"name"`
			State   string `json:"state"`
			FilesOK int    `json:"files_ok"`
		} `json:"mirrors"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("JSON: %v\n%s", err, stdout)
	}
	if rep.Outcome != "completed" || len(rep.Mirrors) != 1 || rep.Mirrors[0].FilesOK != 2 || rep.Mirrors[0].State != "ok" {
		t.Errorf("report: %+v", rep)
	}
	// Not a terminal: no progress line on stderr.
	if strings.Contains(stderr, "\r") || strings.Contains(stderr, "files checked") {
		t.Errorf("progress drawn on a non-terminal:\n%q", stderr)
	}
}

func TestPrimeCommandGuardExits3(t *testing.T) {
	t.Parallel()
	w := setupPrime(t)
	w.goodMirror(t, "good")
	for _, name := range []string{"dead1", "dead2"} {
		u, err := localmirror.DeadURL()
		if err != nil {
			t.Fatal(err)
		}
		w.mirror(t, name, u)
	}
	code, stdout, stderr := run(t, nil, "prime", "--config", w.Config, "--release", "1.5")
	if code != ExitGuarded {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, ExitGuarded, stdout, stderr)
	}
	if !strings.Contains(stdout, "outcome: guarded") || !strings.Contains(stderr, "mass-failure guard") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
}

func TestPrimeCommandManifestErrorExits1(t *testing.T) {
	t.Parallel()
	w := setupPrime(t)
	w.goodMirror(t, "good")
	w.Master.Put(w.Rel, "SHA256SUMS", []byte("not a manifest line\n"))
	code, _, stderr := run(t, nil, "prime", "--config", w.Config, "--release", "1.5")
	if code != ExitFailure || !strings.Contains(stderr, "SHA256SUMS:1:") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestSweepCommand(t *testing.T) {
	t.Parallel()
	w := setupPrime(t)
	w.goodMirror(t, "good")
	if code, out, errs := run(t, nil, "prime", "--config", w.Config, "--release", "1.5"); code != ExitOK {
		t.Fatalf("prime: %d\n%s%s", code, out, errs)
	}
	for _, deep := range []bool{false, true} {
		args := []string{"sweep", "--config", w.Config, "--format", "json"}
		if deep {
			args = append(args, "--deep")
		}
		code, stdout, stderr := run(t, nil, args...)
		if code != ExitOK {
			t.Fatalf("%v: exit %d\n%s%s", args, code, stdout, stderr)
		}
		var rep struct {
			Kind    string `json:"kind"`
			Outcome string `json:"outcome"`
			Files   int    `json:"files"`
			Mirrors []struct {
				State     string `json:"state"`
				Unchanged int    `json:"unchanged"`
				Hashed    int    `json:"hashed"`
			} `json:"mirrors"`
		}
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatalf("JSON: %v\n%s", err, stdout)
		}
		wantKind := map[bool]string{false: "sweep", true: "deep_sweep"}[deep]
		if rep.Kind != wantKind || rep.Outcome != "completed" || rep.Files != 1 || len(rep.Mirrors) != 1 || rep.Mirrors[0].State != "up" {
			t.Errorf("%v: %+v", args, rep)
		}
	}
	code, stdout, _ := run(t, nil, "sweep", "--config", w.Config)
	if code != ExitOK || !strings.Contains(stdout, "outcome: completed") {
		t.Errorf("table: exit %d\n%s", code, stdout)
	}
	for _, line := range strings.Split(stdout, "\n") {
		if len([]rune(line)) > 80 {
			t.Errorf("line over 80 columns: %q", line)
		}
	}
}
