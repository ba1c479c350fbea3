package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// run runs the command line in-process and returns exit code, stdout and
// stderr.
func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &Env{
		Stdin:  strings.NewReader(""),
		Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] },
	}
	code := Main(context.Background(), e, args)
	return code, out.String(), errb.String()
}

// writeConfig writes a valid configuration for dbURL and returns its path.
func writeConfig(t *testing.T, dbURL string, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := "database:\n  url: " + dbURL + "\nmaster:\n  url: http://127.0.0.1:1/pub\nreleases:\n  dir: /firefox/releases/{release}/\n" +
		"  products: [\"Firefox-{release}\"]\nchecks:\n  contact: ops@example.org\n" + extra
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "postgres://u@127.0.0.1:1/db", "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage: sentry <command>"},
		{"unknown command", []string{"primer"}, `unknown command "primer"`},
		{"bad flag", []string{"prime", "--relase", "1.5"}, "unknown flag --relase"},
		{"flag without its value", []string{"sweep", "--mirror"}, "flag needs an argument: --mirror"},
		{"bad log format", []string{"sweep", "--log-format", "xml"}, `--log-format "xml": want text or json`},
		{"bad log level", []string{"sweep", "--log-level", "loud"}, `--log-level "loud": want debug, info, warn or error`},
		{"missing release", []string{"prime", "--config", cfg}, "--release is required"},
		{"bad release name", []string{"prime", "--config", cfg, "--release", "../1.5"}, "invalid release name"},
		{"release with slash", []string{"prime", "--config", cfg, "--release", "1.5/x"}, "not allowed"},
		{"stray argument", []string{"sweep", "--config", cfg, "now"}, `unexpected argument "now"`},
		{"bad format", []string{"report", "--format", "xml"}, `--format "xml"`},
		{"db without subcommand", []string{"db"}, "sentry db migrate"},
		{"mirror without subcommand", []string{"mirror"}, "sentry mirror set NAME [--SETTING VALUE]..."},
		{"db unknown subcommand", []string{"db", "drop"}, `unknown command "db drop"`},
		{"demo with a configuration", []string{"demo", "--config", cfg}, "the demo writes its own configuration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, nil, tt.args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, ExitUsage, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
		})
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	t.Parallel()
	for name := range commands {
		args := append(strings.Fields(name), "--help")
		code, stdout, stderr := run(t, nil, args...)
		if code != ExitOK || !strings.Contains(stdout, "usage: sentry "+name) || !strings.Contains(stdout, "--config FILE") ||
			!strings.Contains(stdout, "--log-format") || !strings.Contains(stdout, "--log-level") {
			t.Errorf("%s --help: exit %d\nstdout:\n%s\nstderr:\n%s", name, code, stdout, stderr)
		}
		// One flag style throughout: --flag, never -flag.
		for _, line := range strings.Split(stdout, "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "-") && !strings.HasPrefix(f[0], "--") {
				t.Errorf("%s --help: a flag in another style: %q", name, line)
			}
		}
	}
	// A group's help lists every subcommand registered in it.
	for _, group := range []string{"db", "mirror"} {
		code, stdout, _ := run(t, nil, group, "--help")
		n := 0
		for name, c := range commands {
			if g, _, _ := strings.Cut(name, " "); g != group {
				continue
			}
			n++
			if want := strings.TrimSpace("sentry " + name + " " + c.usage); code != ExitOK || !strings.Contains(stdout, want) {
				t.Errorf("sentry %s --help: exit %d, lacks %q:\n%s", group, code, want, stdout)
			}
		}
		if n < 2 {
			t.Errorf("group %s has %d subcommands registered, want at least 2", group, n)
		}
	}
	code, stdout, _ := run(t, nil, "--help")
	for _, args := range [][]string{{"--help"}, {"db", "--help"}, {"mirror", "--help"}} {
		_, out, _ := run(t, nil, args...)
		for _, line := range strings.Split(out, "\n") {
			if n := utf8.RuneCountInString(line); n > 80 {
				t.Errorf("sentry %s: a line of %d columns, over 80: %q", strings.Join(args, " "), n, line)
			}
		}
	}
	// One column for the summaries, however long a command's name.
	col := -1
	for _, line := range strings.Split(stdout, "\n") {
		name, ok := commandLine(line)
		if !ok {
			continue
		}
		if c := len(line) - len(strings.TrimLeft(line[2+len(name):], " ")); col == -1 {
			col = c
		} else if c != col {
			t.Errorf("sentry --help: %q's summary starts at column %d, the others at %d", name, c, col)
		}
	}
	for _, want := range []string{"db migrate", "prime", "version", "exit codes:", "  3  the run completed, but the mass-failure guard",
		"--log-format text|json"} {
		if code != ExitOK || !strings.Contains(stdout, want) {
			t.Errorf("sentry --help: exit %d, lacks %q:\n%s", code, want, stdout)
		}
	}
	code, stdout, _ = run(t, nil, "run", "--help")
	for _, want := range []string{"POST /hooks/release", "GET  /api/", "GET  /metrics", "GET  /healthz", "SIGTERM", "shutdown_grace",
		"SENTRY_DATABASE_URL", "SENTRY_HOOK_SECRET", "SENTRY_TRIGGER_SECRET", "SENTRY_NOTIFY_SECRET"} {
		if code != ExitOK || !strings.Contains(stdout, want) {
			t.Errorf("sentry run --help lacks %q:\n%s", want, stdout)
		}
	}
}

// commandLine returns the command a line of the top usage lists ("  NAME
// summary", the name one or two words of the registered commands or
// "version").
func commandLine(line string) (string, bool) {
	if !strings.HasPrefix(line, "  ") {
		return "", false
	}
	f := strings.Fields(line)
	for _, n := range []int{2, 1} {
		if len(f) > n {
			name := strings.Join(f[:n], " ")
			if _, ok := commands[name]; ok || name == "version" {
				return name, true
			}
		}
	}
	return "", false
}

func TestConfigErrorsExit1WithLine(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "postgres://u@127.0.0.1:1/db", "guard:\n  max_down_fractoin: 0.2\n")
	code, _, stderr := run(t, nil, "db", "migrate", "--config", cfg)
	if code != ExitFailure || !strings.Contains(stderr, "config.yaml:11:") || !strings.Contains(stderr, `unknown key "max_down_fractoin"`) {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	code, _, stderr = run(t, nil, "db", "migrate", "--config", filepath.Join(t.TempDir(), "absent.yaml"))
	if code != ExitFailure || !strings.Contains(stderr, "absent.yaml does not exist") {
		t.Errorf("missing config: exit %d, stderr:\n%s", code, stderr)
	}
}

func TestUnreachableDatabaseExit1NamesHostNotPassword(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	secret := "pa55-W0rd-never-shown"
	url := "postgres://sentry:" + secret + "@127.0.0.1:" + port + "/bouncer?connect_timeout=5"
	for _, how := range []string{"file", "environment"} {
		t.Run(how, func(t *testing.T) {
			var env map[string]string
			cfg := writeConfig(t, url, "")
			if how == "environment" {
				cfg = writeConfig(t, "postgres://other@db.invalid/x", "")
				env = map[string]string{"SENTRY_DATABASE_URL": url}
			}
			for _, args := range [][]string{{"db", "migrate"}, {"prime", "--release", "1.5"}} {
				code, stdout, stderr := run(t, env, append(args, "--config", cfg)...)
				if code != ExitFailure {
					t.Errorf("%v: exit %d, want 1", args, code)
				}
				if !strings.Contains(stderr, "127.0.0.1:"+port) || !strings.Contains(stderr, "database unreachable") {
					t.Errorf("%v: stderr does not name host and port:\n%s", args, stderr)
				}
				if strings.Contains(stderr+stdout, secret) {
					t.Errorf("%v: output shows the password:\n%s%s", args, stdout, stderr)
				}
			}
		})
	}
}

func TestDBMigrate(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, pgtest.NewDB(t), "")
	code, stdout, stderr := run(t, nil, "db", "migrate", "--config", cfg)
	if code != ExitOK || !strings.Contains(stdout, "applied 0001_bouncer_tables") {
		t.Fatalf("first migrate: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, nil, "db", "migrate", "--config", cfg)
	if code != ExitOK || !strings.Contains(stdout, "nothing to do") {
		t.Fatalf("second migrate: exit %d\n%s%s", code, stdout, stderr)
	}
}

func TestPrimeNeedsMigratedSchema(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, pgtest.NewDB(t), "")
	code, _, stderr := run(t, nil, "prime", "--config", cfg, "--release", "1.5")
	if code != ExitFailure || !strings.Contains(stderr, "sentry db migrate") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestDBPrune(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDB(t)
	cfg := writeConfig(t, dbURL, "retention:\n  checks: 2h\n  rollup: 3h\n  sentry_log: 1d\n")
	if code, _, stderr := run(t, nil, "db", "prune", "--config", cfg); code != ExitFailure || !strings.Contains(stderr, "sentry db migrate") {
		t.Errorf("prune before migrate: exit %d\n%s", code, stderr)
	}
	if code, out, stderr := run(t, nil, "db", "migrate", "--config", cfg); code != ExitOK {
		t.Fatalf("migrate: %d %s %s", code, out, stderr)
	}
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `INSERT INTO sentry_check_hourly (mirror_id, hour, vantage, result, n, last_at)
		VALUES (1, date_trunc('hour', now() - interval '5 hours'), 'v', 'ok', 3, now() - interval '5 hours'),
		       (1, date_trunc('hour', now()), 'v', 'ok', 1, now())`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), `INSERT INTO sentry_log (log_date, mirror_id, mirror_active, mirror_rating, reason)
		VALUES (now() - interval '2 days', 1, true, 1, 'old'), (now(), 1, true, 1, 'new')`); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, nil, "db", "prune", "--config", cfg)
	if code != ExitOK || !strings.Contains(out, "1 hourly counts older than 3h") || !strings.Contains(out, "pruned 1 sentry_log rows older than 24h") {
		t.Errorf("prune: exit %d\n%s%s", code, out, stderr)
	}
	var logLeft string
	if err := conn.QueryRow(context.Background(), `SELECT string_agg(reason, ',') FROM sentry_log`).Scan(&logLeft); err != nil || logLeft != "new" {
		t.Errorf("sentry_log left: %q (%v), want the new row", logLeft, err)
	}
	var left int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM sentry_check_hourly`).Scan(&left); err != nil || left != 1 {
		t.Errorf("%d hourly counts left (%v), want the recent one", left, err)
	}
}
