package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// settingsRow reads a mirror's sentry_mirror_settings row as text, every
// column ("<null>" for NULL), or "<no row>".
func (w *primeWorld) settingsRow(t *testing.T, name string) string {
	t.Helper()
	var row string
	w.Query(t, fmt.Sprintf(`SELECT coalesce((SELECT concat_ws('|', prime_mode, coalesce(trigger_url, '<null>'),
			coalesce(max_concurrency::text, '<null>'), coalesce(max_rate::text, '<null>'), coalesce(rsync_url, '<null>'),
			coalesce(purge_method, '<null>'), coalesce(purge_url, '<null>'), coalesce(contact, '<null>'))
		FROM sentry_mirror_settings st JOIN mirror_mirrors m ON m.id = st.mirror_id WHERE m.name = '%s'), '<no row>')`, name), &row)
	return row
}

// mirrorWorld is a prime world whose configuration has a trigger secret.
func mirrorWorld(t *testing.T, secret bool) *primeWorld {
	t.Helper()
	w := setupPrime(t)
	if secret {
		f, err := os.OpenFile(w.Config, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("trigger:\n  secret: 0123456789abcdef0123456789\n"); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// TestMirrorSetRoundTripsEverySetting: every setting of
// sentry_mirror_settings is written by `sentry mirror set` as given, read
// back by `sentry mirror show` (a URL's token hidden), and set back to its
// default by --unset, by its flag's name or its column's.
func TestMirrorSetRoundTripsEverySetting(t *testing.T) {
	t.Parallel()
	w := mirrorWorld(t, true)
	w.mirror(t, "m1", "https://m1.example.org/pub")
	if got := w.settingsRow(t, "m1"); got != "<no row>" {
		t.Fatalf("settings before: %s", got)
	}
	code, out, errs := run(t, nil, "mirror", "set", "m1", "--config", w.Config, "--format", "json",
		"--prime-mode", "trigger", "--trigger-url", "https://m1.example.org/hook?token=s3cr3t-tok3n",
		"--max-concurrency", "3", "--max-rate", "2.5", "--rsync-url", "rsync://m1.example.org/pub/",
		"--purge-method", "PURGE", "--purge-url", "{url}", "--contact", "admin@m1.example.org")
	if code != ExitOK {
		t.Fatalf("set: exit %d\n%s%s", code, out, errs)
	}
	var set struct {
		Changed  []string     `json:"changed"`
		Settings settingsJSON `json:"settings"`
	}
	if err := json.Unmarshal([]byte(out), &set); err != nil || len(set.Changed) != 8 {
		t.Errorf("set's JSON: %v %s; want the 8 settings changed", err, out)
	}
	want := "trigger|https://m1.example.org/hook?token=s3cr3t-tok3n|3|2.5|rsync://m1.example.org/pub|PURGE|{url}|admin@m1.example.org"
	if got := w.settingsRow(t, "m1"); got != want {
		t.Errorf("row after set:\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(out, "s3cr3t-tok3n") {
		t.Errorf("set printed the trigger URL's token:\n%s", out)
	}

	code, out, errs = run(t, nil, "mirror", "show", "m1", "--config", w.Config, "--format", "json")
	if code != ExitOK {
		t.Fatalf("show: exit %d\n%s%s", code, out, errs)
	}
	var m mirrorJSON
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	s := m.Settings
	if s.PrimeMode != "trigger" || s.TriggerURL == nil || *s.TriggerURL != "https://m1.example.org/hook?token=xxxxx" ||
		s.MaxConcurrency == nil || *s.MaxConcurrency != 3 || s.Concurrency != 3 || s.MaxRate == nil || *s.MaxRate != 2.5 ||
		s.Rate != 2.5 || s.RsyncURL == nil || *s.RsyncURL != "rsync://m1.example.org/pub" || s.PurgeMethod == nil ||
		*s.PurgeMethod != "PURGE" || s.PurgeURL == nil || *s.PurgeURL != "{url}" || s.Contact == nil || *s.Contact != "admin@m1.example.org" {
		t.Errorf("show's settings: %s", out)
	}
	code, out, _ = run(t, nil, "mirror", "show", "m1", "--config", w.Config)
	for _, line := range []string{"prime_mode       trigger", "trigger_url      https://m1.example.org/hook?token=xxxxx",
		"max_concurrency  3", "max_rate         2.5/s", "rsync_url        rsync://m1.example.org/pub", "purge_method     PURGE",
		"purge_url        {url}", "contact          admin@m1.example.org"} {
		if code != ExitOK || !strings.Contains(out, line) {
			t.Errorf("show's table lacks %q:\n%s", line, out)
		}
	}
	fits80(t, out)

	// Back to the defaults, by flag and by column names.
	code, out, errs = run(t, nil, "mirror", "set", "m1", "--config", w.Config, "--unset", "prime-mode", "--unset", "trigger_url",
		"--unset", "max-concurrency", "--unset", "max_rate", "--unset", "rsync-url", "--unset", "purge_method", "--unset", "purge-url",
		"--unset", "contact")
	if code != ExitOK || !strings.Contains(out, "mirror m1: set prime_mode, trigger_url, max_concurrency, max_rate, rsync_url, purge_method, purge_url, contact") ||
		!strings.Contains(out, "(default: 4, checks.per_mirror_concurrency)") {
		t.Errorf("unset: exit %d\n%s%s", code, out, errs)
	}
	if got := w.settingsRow(t, "m1"); got != "pull|<null>|<null>|<null>|<null>|<null>|<null>|<null>" {
		t.Errorf("row after unsetting everything: %s", got)
	}
	// One setting alone leaves the others as they are.
	if code, _, errs := run(t, nil, "mirror", "set", "--max-rate", "7", "--config", w.Config, "m1"); code != ExitOK {
		t.Fatalf("set max-rate: %d %s", code, errs)
	}
	if code, _, errs := run(t, nil, "mirror", "set", "m1", "--config", w.Config, "--contact", "other@m1.example.org"); code != ExitOK {
		t.Fatalf("set contact: %d %s", code, errs)
	}
	if got := w.settingsRow(t, "m1"); got != "pull|<null>|<null>|7|<null>|<null>|<null>|other@m1.example.org" {
		t.Errorf("row after two single changes: %s", got)
	}
}

// TestMirrorSetRefusesBadValues: a value a run could not use is refused
// with exit 1 naming the flag and the value, and nothing is written, not
// even the good values given with it; usage mistakes are exit 2.
func TestMirrorSetRefusesBadValues(t *testing.T) {
	t.Parallel()
	w := mirrorWorld(t, true)
	w.mirror(t, "m1", "https://m1.example.org/pub")
	if code, _, errs := run(t, nil, "mirror", "set", "m1", "--config", w.Config, "--contact", "admin@m1.example.org",
		"--max-concurrency", "2"); code != ExitOK {
		t.Fatalf("set: %d %s", code, errs)
	}
	before := w.settingsRow(t, "m1")
	noSecret := writeConfigWith(t, w.DBURL, w.Master.URL)
	tests := []struct {
		name   string
		config string
		args   []string
		want   []string
	}{
		{"unknown mode", "", []string{"--prime-mode", "push"}, []string{`--prime-mode "push"`, "want pull, trigger or passive"}},
		{"trigger without a URL", "", []string{"--prime-mode", "trigger"}, []string{"sentry_mirror_settings.trigger_url", "--trigger-url", "needs a trigger URL"}},
		{"trigger URL not http", "", []string{"--prime-mode", "trigger", "--trigger-url", "ftp://m1.example.org/x"},
			[]string{`--trigger-url "ftp://m1.example.org/x"`, "not an absolute http:// or https:// URL"}},
		{"trigger URL relative", "", []string{"--trigger-url", "/hook"}, []string{`--trigger-url "/hook"`}},
		{"trigger without a secret", noSecret, []string{"--prime-mode", "trigger", "--trigger-url", "https://m1.example.org/hook"},
			[]string{`--prime-mode "trigger"`, "trigger secret", "SENTRY_TRIGGER_SECRET"}},
		{"concurrency too high", "", []string{"--max-concurrency", "65"}, []string{`--max-concurrency "65"`, "want 1 to 64"}},
		{"concurrency zero", "", []string{"--max-concurrency", "0"}, []string{`--max-concurrency "0"`, "--unset max-concurrency"}},
		{"concurrency not a number", "", []string{"--max-concurrency", "four"}, []string{`--max-concurrency "four"`, "not a whole number"}},
		{"rate negative", "", []string{"--max-rate", "-1"}, []string{`--max-rate "-1"`, "above 0"}},
		{"rate infinite", "", []string{"--max-rate", "Inf"}, []string{`--max-rate "+Inf"`, "above 0"}},
		{"rate not a number", "", []string{"--max-rate", "fast"}, []string{`--max-rate "fast"`, "not a number"}},
		{"rsync URL over http", "", []string{"--rsync-url", "http://m1.example.org/pub"}, []string{`--rsync-url "http://m1.example.org/pub"`, "rsync://HOST/MODULE"}},
		{"rsync URL without a module", "", []string{"--rsync-url", "rsync://m1.example.org"}, []string{`--rsync-url "rsync://m1.example.org"`, "names no module"}},
		{"purge method in lower case", "", []string{"--purge-method", "purge", "--purge-url", "{url}"}, []string{`--purge-method "purge"`, "in capitals"}},
		{"purge method without a URL", "", []string{"--purge-method", "PURGE"}, []string{"sentry_mirror_settings.purge_url", "--purge-url", "needs one"}},
		{"purge URL not absolute", "", []string{"--purge-method", "PURGE", "--purge-url", "/purge{path}"},
			[]string{`--purge-url "/purge{path}"`, "does not give an absolute http:// or https:// URL"}},
		{"contact with a name", "", []string{"--contact", "Admin <admin@m1.example.org>"}, []string{"--contact", "not a plain e-mail address"}},
		{"contact not an address", "", []string{"--contact", "m1 admins"}, []string{`--contact "m1 admins"`}},
		{"empty value", "", []string{"--contact", ""}, []string{"--contact is empty", "--unset contact"}},
		{"a good value beside a bad one", "", []string{"--contact", "new@m1.example.org", "--max-rate", "0"}, []string{`--max-rate "0"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := w.Config
			if tt.config != "" {
				cfg = tt.config
			}
			code, out, stderr := run(t, nil, append([]string{"mirror", "set", "m1", "--config", cfg}, tt.args...)...)
			if code != ExitFailure {
				t.Errorf("exit %d, want 1\n%s%s", code, out, stderr)
			}
			for _, w := range append(tt.want, "refused, nothing written") {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if got := w.settingsRow(t, "m1"); got != before {
				t.Errorf("the row changed: %s, was %s", got, before)
			}
		})
	}
	// An unknown mirror is exit 1 naming those there are.
	if code, _, stderr := run(t, nil, "mirror", "set", "m2", "--config", w.Config, "--contact", "a@b.org"); code != ExitFailure ||
		!strings.Contains(stderr, `no such mirror named "m2"`) || !strings.Contains(stderr, "m1") {
		t.Errorf("unknown mirror: exit %d\n%s", code, stderr)
	}
	for _, u := range []struct {
		args []string
		want string
	}{
		{[]string{"mirror", "set", "--contact", "a@b.org"}, "NAME is required"},
		{[]string{"mirror", "set", "m1"}, "nothing to change"},
		{[]string{"mirror", "set", "m1", "--unset", "speed"}, `--unset "speed": not a setting`},
		{[]string{"mirror", "set", "m1", "--contact", "a@b.org", "--unset", "contact"}, "--contact is both set and unset"},
		{[]string{"mirror", "show"}, "NAME is required"},
		{[]string{"mirror", "forget", "m1", "m2"}, `unexpected argument "m2"`},
		{[]string{"mirror"}, "sentry mirror list"},
	} {
		code, _, stderr := run(t, nil, append(u.args, "--config", w.Config)...)
		if code != ExitUsage || !strings.Contains(stderr, u.want) {
			t.Errorf("%v: exit %d, want 2 saying %q:\n%s", u.args, code, u.want, stderr)
		}
	}
	if got := w.settingsRow(t, "m1"); got != before {
		t.Errorf("the row changed: %s, was %s", got, before)
	}
}

// TestMirrorListShowAndForget: `sentry mirror list` gives every bouncer
// mirror — primed, switched off, without a region — with its condition,
// mode, rating, region and settings, in a table that fits 80 columns and
// in JSON; `show` a mirror's settings, what was learned of it and its
// last runs' reasons; `forget` drops what was learned, once.
func TestMirrorListShowAndForget(t *testing.T) {
	t.Parallel()
	w := mirrorWorld(t, true)
	w.goodMirror(t, "good")
	w.AddMirror(t, &factory.MirrorOpts{Name: "switched-off", BaseURL: "http://off.example.org/pub", Active: factory.Ptr(false)})
	w.AddMirror(t, &factory.MirrorOpts{Name: "a-mirror-with-a-rather-long-name-and-no-region", BaseURL: "http://noregion.example.org/pub",
		Regions: []int{}, Rating: factory.Ptr(70)})
	for _, cmd := range [][]string{{"prime", "--release", "1.5"}, {"sweep"}} {
		if code, out, errs := run(t, nil, append(cmd, "--config", w.Config)...); code != ExitOK {
			t.Fatalf("%v: %d %s %s", cmd, code, out, errs)
		}
	}
	if code, _, errs := run(t, nil, "mirror", "set", "good", "--config", w.Config, "--max-concurrency", "3",
		"--contact", "admin@good.example.org"); code != ExitOK {
		t.Fatal(errs)
	}
	id := w.Mirrors["good"]
	w.Exec(t, `INSERT INTO sentry_mirror_priming (mirror_id, prime_by, reason) VALUES ($1, 'range', 'a one-byte request filled the cache')`, id)
	w.Exec(t, `INSERT INTO sentry_mirror_ranges (mirror_id, max_ranges, in_full, reason) VALUES ($1, 10, false, 'answered 10 of 32 ranges')`, id)

	// A region row naming no region: the redirector's join takes it all
	// the same, and so does every view.
	nullRegion := w.AddMirror(t, &factory.MirrorOpts{Name: "null-region", BaseURL: "http://null.example.org/pub", Regions: []int{}})
	w.Exec(t, `INSERT INTO geoip_mirror_region_map (mirror_id, region_id) VALUES ($1, NULL)`, nullRegion)

	code, out, errs := run(t, nil, "mirror", "list", "--config", w.Config)
	if code != ExitOK {
		t.Fatalf("list: %d %s", code, errs)
	}
	fits80(t, out)
	for _, want := range []string{"MIRROR", "good ", "switched-off", "a-mirror-with-a…", "disabled", "never offered: no region",
		"    never offered: switched off", "conc 3; admin@good.ex", "(null)"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = run(t, nil, "mirror", "list", "--config", w.Config, "--format", "json")
	var list struct {
		Mirrors []mirrorJSON `json:"mirrors"`
	}
	if err := json.Unmarshal([]byte(out), &list); code != ExitOK || err != nil || len(list.Mirrors) != 4 {
		t.Fatalf("list JSON: %d %v\n%s", code, err, out)
	}
	byName := map[string]mirrorJSON{}
	for _, m := range list.Mirrors {
		byName[m.Name] = m
	}
	g := byName["good"]
	if g.Condition != "up" || g.Offer != "" || len(g.Regions) != 1 || g.Settings.PrimeMode != "pull" || g.Settings.Concurrency != 3 ||
		g.Learned.Priming == nil || g.Learned.Priming.PrimeBy != "range" || g.Learned.Ranges == nil || *g.Learned.Ranges.MaxRanges != 10 ||
		g.LastReason == "" {
		t.Errorf("good: %+v", g)
	}
	if n := byName["a-mirror-with-a-rather-long-name-and-no-region"]; n.Offer != "no region (geoip_mirror_region_map)" ||
		len(n.Regions) != 0 || n.Rating != 70 || n.Settings.Concurrency != 4 || n.Learned.Priming != nil {
		t.Errorf("no region: %+v", n)
	}
	if o := byName["switched-off"]; o.Active || o.Condition != "disabled" || o.Offer != "switched off by its admin" {
		t.Errorf("switched off: %+v", o)
	}
	if n := byName["null-region"]; n.Offer != "" || len(n.Regions) != 0 {
		t.Errorf("a region row naming no region: %+v; want offered, as the redirector and the reports have it", n)
	}
	code, out, _ = run(t, nil, "report", "--config", w.Config, "--format", "json")
	var rep struct {
		Mirrors []struct {
			Name       string `json:"name"`
			NotOffered string `json:"not_offered"`
		} `json:"mirrors"`
	}
	if err := json.Unmarshal([]byte(out), &rep); code != ExitOK || err != nil {
		t.Fatalf("report JSON: %d %v\n%s", code, err, out)
	}
	for _, r := range rep.Mirrors {
		if r.Name == "null-region" && r.NotOffered != "" {
			t.Errorf("the report says the null-region mirror is never offered: %s", r.NotOffered)
		}
	}

	code, out, _ = run(t, nil, "mirror", "show", "good", "--config", w.Config)
	fits80(t, out)
	for _, want := range []string{"mirror good", "region 1", "state: up since", "max_concurrency  3", "max_rate         (default: 100000/s",
		"priming          range", "a one-byte request filled the cache", "ranges           at most 10 ranges a request",
		"recent runs (sentry_log, newest first): 2", "prime 1.5", "sweep"} {
		if code != ExitOK || !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = run(t, nil, "mirror", "show", "good", "--config", w.Config, "--format", "json")
	var m mirrorJSON
	if err := json.Unmarshal([]byte(out), &m); code != ExitOK || err != nil || len(m.Recent) != 2 || !m.Recent[0].Up ||
		!strings.Contains(m.Recent[1].Reason, "prime 1.5") {
		t.Errorf("show JSON: %d %v\n%s", code, err, out)
	}
	if code, _, stderr := run(t, nil, "mirror", "show", "nope", "--config", w.Config); code != ExitFailure ||
		!strings.Contains(stderr, `no such mirror named "nope"`) {
		t.Errorf("show of an unknown mirror: exit %d\n%s", code, stderr)
	}

	code, out, _ = run(t, nil, "mirror", "forget", "good", "--config", w.Config)
	if code != ExitOK || !strings.Contains(out, "forgot how a prime fills its cache and how its server answers ranges") {
		t.Errorf("forget: %d\n%s", code, out)
	}
	var left int
	w.Query(t, `SELECT (SELECT count(*) FROM sentry_mirror_priming) + (SELECT count(*) FROM sentry_mirror_ranges)`, &left)
	if left != 0 {
		t.Errorf("%d rows of what was learned left after forget", left)
	}
	code, out, _ = run(t, nil, "mirror", "forget", "good", "--config", w.Config, "--format", "json")
	if code != ExitOK || !strings.Contains(out, `"forgot_priming": false`) {
		t.Errorf("forget again: %d\n%s", code, out)
	}
}

// TestNeverOfferedWords: `sentry mirror list` says why the redirector
// never offers a mirror by the rule the reports follow
// (decide.NeverOffered): the switch first, then the region row, then a
// base URL of neither scheme (case-sensitive, as the redirector's filter).
func TestNeverOfferedWords(t *testing.T) {
	for _, tt := range []struct {
		name    string
		active  bool
		regions []int
		baseURL string
		want    string
	}{
		{"offered over http", true, []int{1}, "http://m.example/pub/", ""},
		{"offered over https", true, []int{1}, "https://m.example/pub/", ""},
		{"switched off, whatever else", false, nil, "ftp://m.example/", "switched off by its admin"},
		{"no region", true, nil, "http://m.example/pub/", "no region (geoip_mirror_region_map)"},
		{"no region before the scheme", true, nil, "HTTP://m.example/pub/", "no region (geoip_mirror_region_map)"},
		{"neither scheme", true, []int{1}, "HTTP://m.example/pub/", "wrong scheme: its base URL starts with neither http:// nor https:// (the redirector's filter is case-sensitive)"},
	} {
		r := store.MirrorRecord{Active: tt.active, HasRegion: len(tt.regions) > 0, Regions: tt.regions, BaseURL: tt.baseURL}
		if got := neverOffered(r); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
