package cli

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
)

// promoteWorld primes release 1.5 (one location) on a mirror of rating 79
// and one of rating 21 lacking its file: 79% of the eligible capacity,
// with firefox-latest naming Firefox-1.0 and configured.
func promoteWorld(t *testing.T) *primeWorld {
	t.Helper()
	w := setupPrime(t)
	data, err := os.ReadFile(w.Config)
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), "  products: [\"Firefox-{release}\"]\n",
		"  products: [\"Firefox-{release}\"]\n  aliases:\n    firefox-latest: \"Firefox-{release}\"\n", 1))
	if err := os.WriteFile(w.Config, data, 0o600); err != nil {
		t.Fatal(err)
	}
	w.AddMirror(t, &factory.MirrorOpts{Name: "good", BaseURL: world.Static(t, "good", w.Rel).URL, Rating: factory.Ptr(79)})
	short := world.Static(t, "short", w.Rel)
	short.Remove(w.Rel, "win32/Firefox Setup 1.5.exe")
	w.AddMirror(t, &factory.MirrorOpts{Name: "short", BaseURL: short.URL, Rating: factory.Ptr(21)})
	conn := w.Connect(t)
	defer conn.Close(context.Background())
	factory.Alias(context.Background(), t, conn, &factory.AliasOpts{Alias: "firefox-latest", RelatedProduct: "Firefox-1.0"})
	if code, out, errs := run(t, nil, "prime", "--config", w.Config, "--release", "1.5"); code != ExitOK {
		t.Fatalf("prime: %d %s %s", code, out, errs)
	}
	return w
}

func (w *primeWorld) alias(t *testing.T) (product string, moves int) {
	t.Helper()
	w.Query(t, `SELECT (SELECT related_product FROM mirror_aliases WHERE alias = 'firefox-latest'), (SELECT count(*) FROM sentry_alias_moves)`,
		&product, &moves)
	return product, moves
}

// TestPromoteCommand: sentry promote shows the uptake per location; below
// promote_at it moves nothing and exits 1 saying why; --dry-run changes
// nothing; --force moves it, once; asked again, it is already there (0).
func TestPromoteCommand(t *testing.T) {
	t.Parallel()
	w := promoteWorld(t)
	if p, n := w.alias(t); p != "Firefox-1.0" || n != 0 {
		t.Fatalf("the prime at 79%% moved the alias: %s, %d moves", p, n)
	}

	code, out, errs := run(t, nil, "promote", "--config", w.Config, "--release", "1.5")
	if code != ExitFailure || !strings.Contains(out, "firefox-latest: Firefox-1.0 → Firefox-1.5\n  not moved: 1 of 1 locations below 80.0%") ||
		!strings.Contains(out, "79.0%") || !strings.Contains(out, "79/100") || !strings.Contains(errs, "--force moves it anyway") {
		t.Errorf("below the threshold: exit %d\n%s\n%s", code, out, errs)
	}
	fits80(t, out)

	for _, args := range [][]string{{"--dry-run"}, {"--dry-run", "--force"}} {
		code, out, errs = run(t, nil, append([]string{"promote", "--config", w.Config, "--release", "1.5"}, args...)...)
		want := map[bool]int{false: ExitFailure, true: ExitOK}[len(args) == 2]
		if code != want || !strings.Contains(out, "dry run: nothing moved") {
			t.Errorf("%v: exit %d, want %d\n%s\n%s", args, code, want, out, errs)
		}
		if p, n := w.alias(t); p != "Firefox-1.0" || n != 0 {
			t.Errorf("%v changed the alias: %s, %d moves", args, p, n)
		}
	}

	code, out, errs = run(t, nil, "promote", "--config", w.Config, "--release", "1.5", "--force", "--format", "json")
	var rep struct {
		Release string `json:"release"`
		Aliases []struct {
			Alias     string   `json:"alias"`
			From      string   `json:"from"`
			Product   string   `json:"product"`
			Moved     bool     `json:"moved"`
			Forced    bool     `json:"forced"`
			MinUptake *float64 `json:"min_uptake"`
			Locations []struct {
				Uptake *float64 `json:"eligible_uptake"`
			} `json:"locations"`
		} `json:"aliases"`
	}
	if err := json.Unmarshal([]byte(out), &rep); code != ExitOK || err != nil || len(rep.Aliases) != 1 || !rep.Aliases[0].Moved ||
		!rep.Aliases[0].Forced || rep.Aliases[0].From != "Firefox-1.0" || *rep.Aliases[0].MinUptake != 0.79 || len(rep.Aliases[0].Locations) != 1 {
		t.Errorf("--force: exit %d %v\n%s\n%s", code, err, out, errs)
	}
	if p, n := w.alias(t); p != "Firefox-1.5" || n != 1 {
		t.Errorf("after --force: %s, %d moves", p, n)
	}
	code, out, _ = run(t, nil, "promote", "--config", w.Config, "--release", "1.5")
	if code != ExitOK || !strings.Contains(out, "already there") {
		t.Errorf("again: exit %d\n%s", code, out)
	}
	if _, n := w.alias(t); n != 1 {
		t.Errorf("%d moves after asking again", n)
	}
}

func TestPromoteCommandErrors(t *testing.T) {
	t.Parallel()
	w := promoteWorld(t)
	noAliases := writeConfigWith(t, w.DBURL, w.Master.URL)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--config", w.Config}, ExitUsage, "--release is required"},
		{[]string{"--config", w.Config, "--release", "../x"}, ExitUsage, "--release"},
		{[]string{"--config", w.Config, "--release", "1.5", "--alias", "nosuch"}, ExitFailure, `"nosuch" is not one of releases.aliases (firefox-latest)`},
		{[]string{"--config", w.Config, "--release", "9.9"}, ExitFailure, "sentry never primed release 9.9"},
		{[]string{"--config", noAliases, "--release", "1.5"}, ExitFailure, "no alias is configured (releases.aliases)"},
	} {
		code, out, errs := run(t, nil, append([]string{"promote"}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, want %d with %q\n%s\n%s", c.args, code, c.code, c.want, out, errs)
		}
	}
	if code, out, _ := run(t, nil, "promote", "--help"); code != ExitOK || !strings.Contains(out, "--dry-run") || !strings.Contains(out, "exit codes:") {
		t.Errorf("--help: %d\n%s", code, out)
	}
}
