package primer

import (
	"strings"
	"testing"
)

func TestUnusableSettings(t *testing.T) {
	good := Mirror{BaseURL: "https://m.example.org/pub", Mode: ModeTrigger, TriggerURL: "https://m.example.org/hook?token=T0ken"}
	tests := []struct {
		name   string
		change func(*Mirror)
		secret bool
		want   string // "" usable
	}{
		{"trigger mirror, all set", func(*Mirror) {}, true, ""},
		{"pull mirror needs no trigger", func(m *Mirror) { m.Mode, m.TriggerURL = ModePull, "" }, false, ""},
		{"no trigger URL", func(m *Mirror) { m.TriggerURL = " " }, true, "trigger_url is empty"},
		{"trigger URL not a URL", func(m *Mirror) { m.TriggerURL = "m.example.org/hook?token=T0ken" }, true, "trigger_url is not an absolute"},
		{"trigger URL of another scheme", func(m *Mirror) { m.TriggerURL = "ftp://m.example.org/?token=T0ken" }, true, "trigger_url is not an absolute"},
		{"no secret", func(*Mirror) {}, false, "no trigger secret is configured"},
		{"base URL not a URL", func(m *Mirror) { m.BaseURL = "m.example.org/pub" }, true, "baseurl is not an absolute"},
	}
	for _, tt := range tests {
		m := good
		tt.change(&m)
		got := m.Unusable(tt.secret)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
		if strings.Contains(got, "T0ken") {
			t.Errorf("%s: the reason shows the URL: %q", tt.name, got)
		}
	}
}
