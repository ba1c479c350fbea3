// Package configfuzz fuzzes sentry's configuration loader. It lives apart
// from package sentry's tests so that fuzz workers do not each start the
// PostgreSQL cluster those tests need.
package configfuzz_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/sentry/config"
)

// Secrets the config fuzzer passes through the environment: no error may
// ever show them.
const (
	fuzzDBPassword    = "fuzz-db-pw-5e1f0c"
	fuzzHookSecret    = "fuzz-hook-secret-9a7b3c"
	fuzzTriggerSecret = "fuzz-trigger-secret-42d8e1"
)

// FuzzParseConfig feeds arbitrary bytes to the config loader, with secrets
// in the environment (some of them malformed). It must never panic; a
// refusal wraps ErrConfig and names none of the secrets; an accepted
// configuration validates again unchanged and keeps the invariants the rest
// of sentry relies on.
func FuzzParseConfig(f *testing.F) {
	example, err := os.ReadFile("../../config.yaml.example")
	if err != nil {
		f.Fatal(err)
	}
	minimal := "database:\n  url: postgres://sentry@localhost/bouncer\nmaster:\n  url: https://staging.example.org/pub\n" +
		"releases:\n  dir: /firefox/releases/{release}/\n  products: [\"Firefox-{release}\"]\nchecks:\n  contact: ops@example.org\n"
	seeds := []struct {
		yaml   string
		envSet uint8 // bit 0: database URL, bit 1: hook secret, bit 2: trigger secret
		envDB  string
	}{
		{string(example), 0, ""},
		{minimal, 7, ""},
		{minimal, 1, "?sslmode=bogus"},
		{minimal, 1, " not a url"},
		{minimal, 1, "%zz"},
		{minimal + "bogus: 1\n", 7, ""},
		{minimal + "checks:\n  contact: x\n", 0, ""},
		{minimal + "---\nmaster: {}\n", 0, ""},
		{minimal + "sweep:\n  deep_period: 7d\nshutdown_grace: -1s\n", 7, ""},
		{minimal + "prime:\n  deadline: 99999999999999999999h\n", 0, ""},
		{minimal + "checks:\n  concurrency: 1e400\n", 0, ""},
		{minimal + "schedule:\n  sweep: \"@every -1s\"\n  deep_sweep: \"* * * * * * *\"\n", 0, ""},
		{minimal + "guard:\n  max_down_fraction: .nan\n", 0, ""},
		{minimal + "hook:\n  secret: short\n", 2, ""},
		{"database: &a [*a, *a]\n", 0, ""},
		{"a: &a [x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c, *c]\n", 0, ""},
		{strings.Repeat("[", 5000), 0, ""},
		{"\t- x", 0, ""},
		{"master:\n  url: ftp://user:hunter2@host/\n", 0, ""},
		{"", 7, ""},
		{"\xff\xfe", 1, ""},
	}
	for _, s := range seeds {
		f.Add([]byte(s.yaml), s.envSet, s.envDB)
	}
	f.Fuzz(func(t *testing.T, data []byte, envSet uint8, envDBSuffix string) {
		env := map[string]string{}
		if envSet&1 != 0 {
			env[config.EnvDatabaseURL] = "postgres://sentry:" + fuzzDBPassword + "@db.example.org:5432/bouncer" + envDBSuffix
		}
		if envSet&2 != 0 {
			env[config.EnvHookSecret] = fuzzHookSecret
		}
		if envSet&4 != 0 {
			env[config.EnvTriggerSecret] = fuzzTriggerSecret
		}
		cfg, err := config.Parse(data, "fuzz.yaml", func(k string) string { return env[k] })
		if err != nil {
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("error does not wrap ErrConfig: %v", err)
			}
			for _, secret := range []string{fuzzDBPassword, fuzzHookSecret, fuzzTriggerSecret} {
				// A secret the input itself holds may be quoted back
				// (an unknown key, say); one from the environment never.
				if strings.Contains(err.Error(), secret) && !bytes.Contains(data, []byte(secret)) &&
					!strings.Contains(envDBSuffix, secret) {
					t.Fatalf("the error shows a secret: %v", err)
				}
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("an accepted configuration does not validate again: %v", err)
		}
		switch {
		case cfg.Database.URL == "":
			t.Fatal("accepted without database.url")
		case strings.HasSuffix(cfg.Master.URL, "/"):
			t.Fatalf("master.url %q keeps a trailing slash", cfg.Master.URL)
		case !strings.Contains(cfg.Releases.Dir, "{release}") || !strings.HasPrefix(cfg.Releases.Dir, "/"):
			t.Fatalf("releases.dir %q", cfg.Releases.Dir)
		case len(cfg.Releases.Products) == 0 || len(cfg.Releases.DefaultLangs) == 0:
			t.Fatal("accepted without products or languages")
		case cfg.Checks.Concurrency < 1 || cfg.Checks.PerMirrorConcurrency < 1:
			t.Fatalf("concurrency %d / %d", cfg.Checks.Concurrency, cfg.Checks.PerMirrorConcurrency)
		case cfg.Checks.BodyIdleTimeout <= 0 || cfg.Prime.Deadline <= 0 || cfg.Checks.RetryWaitMax < cfg.Checks.RetryWaitMin:
			t.Fatalf("timeouts %+v %+v", cfg.Checks, cfg.Prime)
		case !(cfg.Guard.MaxDownFraction > 0 && cfg.Guard.MaxDownFraction <= 1):
			t.Fatalf("guard.max_down_fraction %v", cfg.Guard.MaxDownFraction)
		case len(cfg.Hook.Secret) > 0 && len(cfg.Hook.Secret) < 16:
			t.Fatalf("a hook secret of %d bytes accepted", len(cfg.Hook.Secret))
		}
		if v, ok := env[config.EnvHookSecret]; ok && cfg.Hook.Secret != v {
			t.Fatal("SENTRY_HOOK_SECRET did not override hook.secret")
		}
		// The User-Agent goes on every request: one line of printable text.
		if ua := cfg.UserAgent(); strings.ContainsAny(ua, "\r\n") {
			t.Fatalf("User-Agent %q", ua)
		}
	})
}
