package mirrorjob

import (
	"errors"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/sentry/store"
)

func TestCheckSettings(t *testing.T) {
	t.Parallel()
	const base = "https://m.example.org/pub"
	good := store.MirrorSettings{Mode: "trigger", TriggerURL: "https://m.example.org/hook?token=t0k3n", MaxConcurrency: 64,
		MaxRate: 0.5, RsyncURL: "rsync://m.example.org/pub", PurgeMethod: "PURGE", PurgeURL: "https://m.example.org/purge{path}",
		Contact: "admin@m.example.org"}
	tests := []struct {
		name   string
		change func(*store.MirrorSettings)
		secret bool
		want   string // "" for no problem; else Column: the problem's text holds it
	}{
		{"every setting usable", func(*store.MirrorSettings) {}, true, ""},
		{"none set: a pull mirror with the defaults", func(s *store.MirrorSettings) { *s = store.MirrorSettings{} }, false, ""},
		{"unknown mode", func(s *store.MirrorSettings) { s.Mode = "Pull" }, true, `sentry_mirror_settings.prime_mode "Pull": want pull`},
		{"trigger without a secret", func(*store.MirrorSettings) {}, false, "prime_mode \"trigger\": a trigger mirror needs a trigger secret"},
		{"trigger without a URL", func(s *store.MirrorSettings) { s.TriggerURL = "" }, true, "trigger_url: a trigger mirror needs a trigger URL"},
		{"a passive mirror keeps a bad trigger URL out too", func(s *store.MirrorSettings) { s.Mode, s.TriggerURL = "passive", "hook" }, true,
			`trigger_url "hook": not an absolute`},
		{"the trigger URL's token is not shown", func(s *store.MirrorSettings) { s.TriggerURL = "ftp://u:pw@m.example.org/x?token=t0k3n" }, true,
			`trigger_url "ftp://u:xxxxx@m.example.org/x?token=xxxxx"`},
		{"concurrency 65", func(s *store.MirrorSettings) { s.MaxConcurrency = 65 }, true, "max_concurrency \"65\": want 1 to 64"},
		{"concurrency -1", func(s *store.MirrorSettings) { s.MaxConcurrency = -1 }, true, "max_concurrency"},
		{"rate negative", func(s *store.MirrorSettings) { s.MaxRate = -2 }, true, "max_rate \"-2\""},
		{"rate too high", func(s *store.MirrorSettings) { s.MaxRate = 1e6 }, true, "max_rate"},
		{"rsync over http", func(s *store.MirrorSettings) { s.RsyncURL = "http://m.example.org/pub" }, true, "rsync_url"},
		{"purge method alone", func(s *store.MirrorSettings) { s.PurgeURL = "" }, true, "purge_url: is empty, and a purge method needs one"},
		{"purge URL alone", func(s *store.MirrorSettings) { s.PurgeMethod = "" }, true, "purge_method: is empty"},
		{"purge method lower case", func(s *store.MirrorSettings) { s.PurgeMethod = "purge" }, true, `purge_method "purge": is not an HTTP method`},
		{"purge URL relative", func(s *store.MirrorSettings) { s.PurgeURL = "/purge{path}" }, true, `purge_url "/purge{path}": does not give an absolute`},
		{"contact with a name", func(s *store.MirrorSettings) { s.Contact = "Admin <admin@m.example.org>" }, true,
			`contact "Admin <admin@m.example.org>": is not a plain e-mail address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.change(&s)
			got := CheckSettings(base, s, tt.secret)
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("problems %v, want none", got)
			case tt.want != "" && len(got) != 1:
				t.Errorf("problems %v, want one saying %q", got, tt.want)
			case tt.want != "" && !strings.Contains(got[0].Error(), tt.want):
				t.Errorf("problem %q, want it to say %q", got[0].Error(), tt.want)
			}
			if (tt.name == "trigger without a secret") != (len(got) == 1 && errors.Is(got[0], ErrNoTriggerSecret)) {
				t.Errorf("problems %v: ErrNoTriggerSecret only for a trigger mirror without a secret", got)
			}
			for _, p := range got {
				if strings.Contains(p.Error(), "t0k3n") || strings.Contains(p.Error(), ":pw@") {
					t.Errorf("a problem shows a secret: %q", p.Error())
				}
			}
		})
	}
}
