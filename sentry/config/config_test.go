package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func noEnv(string) string { return "" }

const minimalConfig = `
database:
  url: postgres://sentry:hunter2@db.example.org:5433/bouncer
master:
  url: https://staging.example.org/pub/
releases:
  dir: /firefox/releases/{release}/
  products: ["Firefox-{release}"]
checks:
  contact: ops@example.org
`

func TestConfigExampleLoads(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "config.yaml.example"), noEnv)
	if err != nil {
		t.Fatalf("config.yaml.example does not load: %v", err)
	}
	// The example documents the defaults: where it sets a key, the value
	// should be the default, or the example is lying about it.
	def := Default()
	if cfg.Checks.PerMirrorConcurrency != def.Checks.PerMirrorConcurrency ||
		cfg.Guard.MaxDownFraction != def.Guard.MaxDownFraction ||
		cfg.Sweep.DeepPeriod != def.Sweep.DeepPeriod ||
		cfg.Verify != def.Verify ||
		cfg.Schedule != def.Schedule ||
		cfg.Prime != def.Prime ||
		cfg.State != def.State ||
		cfg.ShutdownGrace != def.ShutdownGrace ||
		cfg.Releases.MaxManifestBytes != def.Releases.MaxManifestBytes ||
		cfg.Releases.MaxManifestEntries != def.Releases.MaxManifestEntries {
		t.Errorf("config.yaml.example disagrees with Default:\n%+v\n%+v", cfg, def)
	}
}

func TestConfigExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "config.yaml.example"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range configKeys(t) {
		leaf := key[strings.LastIndexByte(key, '.')+1:]
		if !strings.Contains(string(data), leaf+":") {
			t.Errorf("config.yaml.example does not document %s", key)
		}
	}
}

func TestConfigMinimal(t *testing.T) {
	cfg, err := Parse([]byte(minimalConfig), "c.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Master.URL != "https://staging.example.org/pub" {
		t.Errorf("master.url not normalised: %q", cfg.Master.URL)
	}
	if got := cfg.Checks.PerMirrorConcurrency; got != 4 {
		t.Errorf("default per_mirror_concurrency = %d", got)
	}
	if got := cfg.UserAgent(); !strings.HasPrefix(got, "sentry/") || !strings.HasSuffix(got, "(+ops@example.org)") {
		t.Errorf("UserAgent = %q", got)
	}
}

func TestConfigEnvironmentOverridesSecrets(t *testing.T) {
	env := map[string]string{
		EnvDatabaseURL:   "postgres://other@127.0.0.1:1/x",
		EnvHookSecret:    "hook-s3cret-0123456789",
		EnvTriggerSecret: "trigger-s3cret-0123456789",
	}
	cfg, err := Parse([]byte(minimalConfig), "c.yaml", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database.URL != env[EnvDatabaseURL] || cfg.Hook.Secret != "hook-s3cret-0123456789" || cfg.Trigger.Secret != "trigger-s3cret-0123456789" {
		t.Errorf("environment not applied: %+v", cfg)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // every substring must appear in the error
	}{
		{
			name: "unknown key names file and line",
			yaml: minimalConfig + "guard:\n  max_down_fracton: 0.3\n",
			want: []string{"c.yaml:12:", `unknown key "max_down_fracton"`},
		},
		{
			name: "unknown top-level key",
			yaml: "databse:\n  url: x\n",
			want: []string{"c.yaml:1:", `unknown key "databse"`},
		},
		{
			name: "mistyped value names line",
			yaml: minimalConfig + "state:\n  down_after: two\n",
			want: []string{"c.yaml:12:", "two"},
		},
		{
			name: "bad duration names line",
			yaml: minimalConfig + "prime:\n  deadline: soon\n",
			want: []string{"c.yaml:12:", `invalid duration "soon"`},
		},
		{
			name: "several type errors at once",
			yaml: minimalConfig + "state:\n  down_after: two\n  up_after: three\n",
			want: []string{"c.yaml:12:", "c.yaml:13:"},
		},
		{
			name: "empty file reports every required key",
			yaml: "",
			want: []string{"database.url is required", "master.url is required", "releases.dir is required",
				"releases.products needs at least one", "checks.contact is required"},
		},
		{
			name: "validation reports all problems naming keys",
			yaml: minimalConfig + `
guard:
  max_down_fraction: 1.5
state:
  down_after: 0
schedule:
  sweep: "every now and then"
http:
  listen: "8080"
sweep:
  deep_period: 10m
`,
			want: []string{"guard.max_down_fraction", "state.down_after", "schedule.sweep", "http.listen", "sweep.deep_period"},
		},
		{
			name: "master url must be http",
			yaml: strings.Replace(minimalConfig, "https://staging.example.org/pub/", "ftp://x/", 1),
			want: []string{"master.url", "http"},
		},
		{
			name: "release dir needs placeholder",
			yaml: strings.Replace(minimalConfig, "/firefox/releases/{release}/", "/firefox/releases/", 1),
			want: []string{"releases.dir", "{release}"},
		},
		{
			name: "short secrets",
			yaml: minimalConfig + "hook:\n  secret: abc\ntrigger:\n  secret: def\n",
			want: []string{"hook.secret is 3 bytes, want at least 16", "trigger.secret is 3 bytes"},
		},
		{
			name: "source address not an IP",
			yaml: minimalConfig + "  source_address: not-an-ip\n",
			want: []string{`checks.source_address "not-an-ip" is not an IP address`},
		},
		{
			name: "minimum rate out of range",
			yaml: minimalConfig + "  min_rate: 512\n",
			want: []string{"checks.min_rate must be a rate in bytes a second from 1KiB to 1GiB, not 512"},
		},
		{
			name: "source address with a port",
			yaml: minimalConfig + "  source_address: 192.0.2.10:80\n",
			want: []string{`checks.source_address "192.0.2.10:80" is not an IP address`},
		},
		{
			name: "cluster and quorum out of range",
			yaml: minimalConfig + "state:\n  quorum: -1\ncluster:\n  lease: 1s\n  poll: 10ms\nvantage: \"\"\n",
			want: []string{"state.quorum must be 0", "cluster.lease must be between 2s and 1h, not 1s",
				"cluster.poll must be at least 100ms", "vantage"},
		},
		{
			name: "poll longer than the lease",
			yaml: minimalConfig + "cluster:\n  lease: 10s\n  poll: 20s\n",
			want: []string{"cluster.poll must be at least 100ms and at most cluster.lease, not 20s"},
		},
		{
			name: "aliases and promote_at",
			yaml: strings.Replace(minimalConfig, "  products: [\"Firefox-{release}\"]\n", `  products: ["Firefox-{release}"]
  promote_at: 1.2
  aliases:
    firefox-latest: "Firefox-{release}"
    firefox-beta: "Firefox-{release}-beta"
    firefox-fixed: "Firefox-1.5"
`, 1),
			want: []string{"releases.promote_at must be a share above 0 and at most 1", `releases.aliases.firefox-beta "Firefox-{release}-beta" must be one of releases.products`,
				`releases.aliases.firefox-fixed "Firefox-1.5" must contain {release} once`},
		},
		{
			name: "sentry_log kept for less than a day",
			yaml: minimalConfig + "retention:\n  sentry_log: 2h\n",
			want: []string{"retention.sentry_log must be 0 (keep every row) or at least 1d, not 2h0m0s"},
		},
		{
			name: "two documents",
			yaml: minimalConfig + "---\nvantage: x\n",
			want: []string{"second YAML document"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "c.yaml", noEnv)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the database password:\n%v", err)
			}
		})
	}
}

func TestConfigBadDatabaseURLHidesPassword(t *testing.T) {
	y := strings.Replace(minimalConfig, "postgres://sentry:hunter2@db.example.org:5433/bouncer", "postgres://sentry:hunter2@db.example.org:notaport/bouncer", 1)
	_, err := Parse([]byte(y), "c.yaml", noEnv)
	if err == nil || !strings.Contains(err.Error(), "database.url") {
		t.Fatalf("want a database.url error, got %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestConfigMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), noEnv)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "nope.yaml does not exist") {
		t.Fatalf("got %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"1h30m", 90 * time.Minute, true},
		{"", 0, false},
		{"d", 0, false},
		{"7dd", 0, false},
		{"x7d", 0, false},
		{"99999999d", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// configKeys lists every YAML key of Config as a dotted path, by reflection,
// so that a key added to the struct but not to the example fails a test.
func configKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "" || name == "-" {
				continue
			}
			if f.Type.Kind() == reflect.Struct {
				walk(prefix+name+".", f.Type)
				continue
			}
			keys = append(keys, prefix+name)
		}
	}
	walk("", reflect.TypeOf(Config{}))
	if len(keys) < 20 {
		t.Fatalf("found only %d keys: %v", len(keys), keys)
	}
	return keys
}

func TestConfigSourceAddress(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"unset: the system chooses", "", ""},
		{"ipv4", "192.0.2.10", "192.0.2.10"},
		{"ipv6", "2001:db8::10", "2001:db8::10"},
		{"ipv6 quoted", `"2001:db8::10"`, "2001:db8::10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := minimalConfig
			if tt.value != "" {
				y += "  source_address: " + tt.value + "\n"
			}
			cfg, err := Parse([]byte(y), "c.yaml", noEnv)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Checks.SourceAddress; got != tt.want {
				t.Errorf("checks.source_address = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestConfigErrorsNameTheEnvironmentVariable: a bad value from the
// environment is blamed on its variable, not on the file, and never
// repeated; the file's own problems still name the file.
func TestConfigErrorsNameTheEnvironmentVariable(t *testing.T) {
	env := map[string]string{
		EnvHookSecret:    "short-Hk1",
		EnvNotifySecret:  "short-Nt2",
		EnvTriggerSecret: "short-Tr3",
		EnvDatabaseURL:   "postgres://sentry:prod#2024@127.0.0.1:5432/bouncer",
	}
	_, err := Parse([]byte(minimalConfig), "c.yaml", func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"SENTRY_HOOK_SECRET is 9 bytes", "SENTRY_NOTIFY_SECRET is 9 bytes",
		"SENTRY_TRIGGER_SECRET is 9 bytes", "SENTRY_DATABASE_URL is not usable", "percent-encoded"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	for _, not := range []string{"c.yaml", "hook.secret", "short-", "prod#2024", "2024@"} {
		if strings.Contains(msg, not) {
			t.Errorf("error holds %q:\n%s", not, msg)
		}
	}

	// From the file, the same problems name the file and the keys.
	_, err = Parse([]byte(minimalConfig+"hook:\n  secret: short-Hk1\n"), "c.yaml", noEnv)
	if err == nil || !strings.Contains(err.Error(), "c.yaml: hook.secret is 9 bytes") {
		t.Errorf("file error: %v", err)
	}
}

func TestConfigVerify(t *testing.T) {
	cfg, err := Parse([]byte(minimalConfig), "c.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if v := cfg.Verify; v.Mode != VerifyFull || v.BlockSize != 16<<10 || v.SampleBlocks != 32 || v.Sampled() {
		t.Errorf("defaults: %+v, want full, 16KiB, 32", v)
	}
	for _, tc := range []struct {
		size string
		want Size
	}{{"16384", 16384}, {"16KiB", 16 << 10}, {`"64 kib"`, 64 << 10}, {"1MiB", 1 << 20}, {"4096B", 4096}} {
		cfg, err := Parse([]byte(minimalConfig+"verify:\n  mode: sampled\n  block_size: "+tc.size+"\n  sample_blocks: 8\n"), "c.yaml", noEnv)
		if err != nil {
			t.Errorf("block_size %s: %v", tc.size, err)
			continue
		}
		if cfg.Verify.BlockSize != tc.want || !cfg.Verify.Sampled() || cfg.Verify.SampleBlocks != 8 {
			t.Errorf("block_size %s: %+v, want %d bytes, sampled, 8 blocks", tc.size, cfg.Verify, tc.want)
		}
	}
	for _, tc := range []struct{ yaml, want string }{
		{"verify:\n  mode: quick\n", `verify.mode must be "full" or "sampled", not "quick"`},
		{"verify:\n  block_size: 16KB\n", `c.yaml:12: invalid size "16KB"`},
		{"verify:\n  block_size: 512\n", "verify.block_size must be between 1KiB and 64MiB, not 512"},
		{"verify:\n  sample_blocks: 1\n", "verify.sample_blocks must be between 2"},
	} {
		_, err := Parse([]byte(minimalConfig+tc.yaml), "c.yaml", noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
	if got := Size(16 << 10).String(); got != "16KiB" {
		t.Errorf("16 KiB prints as %q", got)
	}
}

// TestConfigCatchUpBytes: sweep.catch_up_bytes is a size, in bytes or with
// a unit, at least 1MiB; its default is 4GiB.
func TestConfigCatchUpBytes(t *testing.T) {
	cfg, err := Parse([]byte(minimalConfig), "c.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sweep.CatchUpBytes; got != 4<<30 {
		t.Errorf("default %s, want 4GiB", got)
	}
	for _, tc := range []struct {
		yaml string
		want Size
	}{{"8GiB", 8 << 30}, {"1048576", 1 << 20}, {`"512 MiB"`, 512 << 20}} {
		cfg, err := Parse([]byte(minimalConfig+"sweep:\n  catch_up_bytes: "+tc.yaml+"\n"), "c.yaml", noEnv)
		if err != nil || cfg.Sweep.CatchUpBytes != tc.want {
			t.Errorf("catch_up_bytes %s: %v, %v; want %d bytes", tc.yaml, cfg.Sweep.CatchUpBytes, err, tc.want)
		}
	}
	for _, tc := range []struct{ yaml, want string }{
		{"512KiB", "sweep.catch_up_bytes must be at least 1MiB, not 512KiB"},
		{"4GB", `invalid size "4GB"`},
	} {
		_, err := Parse([]byte(minimalConfig+"sweep:\n  catch_up_bytes: "+tc.yaml+"\n"), "c.yaml", noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("catch_up_bytes %s: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestMirrorConcurrency(t *testing.T) {
	cfg := Default()
	cfg.Checks.PerMirrorConcurrency = 4
	if got := cfg.MirrorConcurrency(0); got != 4 {
		t.Errorf("a mirror without a cap of its own: %d, want checks.per_mirror_concurrency", got)
	}
	if got := cfg.MirrorConcurrency(9); got != 9 {
		t.Errorf("a mirror with its own cap: %d, want it", got)
	}
}

func TestConfigAliases(t *testing.T) {
	y := strings.Replace(minimalConfig, "  products: [\"Firefox-{release}\"]\n", `  products: ["Firefox-{release}", "Firefox-{release}-SSL"]
  aliases:
    firefox-latest: "Firefox-{release}"
    firefox-latest-ssl: "Firefox-{release}-SSL"
`, 1)
	cfg, err := Parse([]byte(y), "c.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Releases.PromoteAt != 0.8 {
		t.Errorf("default promote_at %v", cfg.Releases.PromoteAt)
	}
	for alias, want := range map[string]string{"firefox-latest": "Firefox-2.0", "firefox-latest-ssl": "Firefox-2.0-SSL", "nosuch": ""} {
		if got := cfg.AliasProduct(alias, "2.0"); got != want {
			t.Errorf("AliasProduct(%s, 2.0) = %q, want %q", alias, got, want)
		}
	}
	if def := Default(); len(def.Releases.Aliases) != 0 {
		t.Errorf("aliases by default: %v", def.Releases.Aliases)
	}
}
