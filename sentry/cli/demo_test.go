package cli

import (
	"strings"
	"testing"
)

// TestDemoDeadMirrorReadsDownEverywhere runs `sentry demo` and reads what
// it shows of its dead mirror (nothing listens there): after the prime
// judged it down, every view — the prime's table, the bouncer's
// sentry_log, the sweep right after and the report — says down, the word
// the redirector's marks (healthy=false on all its rows) mean. And the
// ssl_only product's users are sent to the https mirror, verified through
// the demo's own CA, at every location; no location is left without a
// good copy.
func TestDemoDeadMirrorReadsDownEverywhere(t *testing.T) {
	t.Parallel()
	code, out, errOut := run(t, nil, "demo")
	if code != ExitOK {
		t.Fatalf("demo exited %d\n%s\n%s", code, out, errOut)
	}
	sections := map[string]string{}
	title := ""
	ssl := 0
	for _, line := range strings.Split(out, "\n") {
		if t, ok := strings.CutPrefix(line, "== "); ok {
			title = t
			continue
		}
		if f := strings.Fields(line); strings.HasPrefix(title, "the redirector's view") && len(f) > 0 && f[0] == "Firefox-1.5-SSL" {
			ssl++
			if f[len(f)-1] != "https" {
				t.Errorf("the redirector's view of the ssl_only product: %q; want the https mirror", line)
			}
		}
		if f := strings.Fields(line); len(f) > 1 && f[0] == "dead" && sections[title] == "" {
			sections[title] = line
		}
	}
	if ssl != 3 {
		t.Errorf("the redirector's view shows %d locations of the ssl_only product, want 3:\n%s", ssl, out)
	}
	if strings.Contains(out, "without a good copy") {
		t.Errorf("a location without a good copy:\n%s", out)
	}
	for _, tt := range []struct {
		section, word string
	}{
		{"the release hook's command: prime, verify and mark", "down"},
		{"what the bouncer's sentry_log now says", "false"},
		{"an integrity sweep, as cron or `sentry run` would start it", "down"},
		{"what ops read: the failure report and the release's uptake", "down"},
	} {
		line, ok := sections[tt.section]
		if !ok {
			t.Errorf("section %q shows no line for the dead mirror:\n%s", tt.section, out)
			continue
		}
		f := strings.Fields(line)
		if !strings.Contains(line, " "+tt.word+" ") || strings.Contains(line, " up ") || strings.Contains(line, "degraded") {
			t.Errorf("section %q: %q; want the dead mirror %s (fields %q)", tt.section, line, tt.word, f)
		}
	}
}
