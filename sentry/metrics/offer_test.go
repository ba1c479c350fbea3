package metrics_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/metrics"
)

// TestMetricsOfWhatTheRedirectorOffers: the scrape says which active
// mirrors the redirector never offers and why, how many locations of a
// live release its users of each scheme reach no good copy of, and the
// uptake over the mirrors it can offer; and the alert on locations
// without a good copy fires on that series (promtool test rules).
func TestMetricsOfWhatTheRedirectorOffers(t *testing.T) {
	t.Parallel()
	w := world.NewOfferWorld(t)
	fams := world.Scrape(t, metrics.New(w.Pool(), w.Deps.Logger).Handler())
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sentry_mirror_not_offered", map[string]string{"mirror": "https-noregion", "reason": "no_region"}, 1},
		{"sentry_mirror_not_offered", map[string]string{"mirror": "upper", "reason": "wrong_scheme"}, 1},
		{"sentry_release_locations_without_good_copy", map[string]string{"release": "1.5", "scheme": "https"}, 2},
		{"sentry_release_locations_without_good_copy", map[string]string{"release": "1.5", "scheme": "http"}, 0},
		{"sentry_release_weighted_uptake", map[string]string{"release": "1.5"}, 0.5},
	} {
		if v, ok := world.Value(t, fams, c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	for _, m := range []string{"http-full", "https-full", "dead"} {
		for _, r := range []string{"no_region", "wrong_scheme"} {
			if _, ok := world.Value(t, fams, "sentry_mirror_not_offered", map[string]string{"mirror": m, "reason": r}); ok {
				t.Errorf("%s said not offered (%s)", m, r)
			}
		}
	}

	rules, err := filepath.Abs("../../docs/prometheus/sentry-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	test := filepath.Join(t.TempDir(), "offer_test.yml")
	if err := os.WriteFile(test, []byte(`rule_files: [`+rules+`]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'sentry_release_locations_without_good_copy{release="1.5",scheme="https",instance="a"}'
        values: '2x60'
      - series: 'sentry_release_locations_without_good_copy{release="1.5",scheme="http",instance="a"}'
        values: '0x60'
      - series: 'sentry_mirror_not_offered{mirror="nr",reason="no_region",instance="a"}'
        values: '1x90'
    alert_rule_test:
      - eval_time: 20m
        alertname: SentryLocationWithoutGoodCopy
        exp_alerts: []
      - eval_time: 40m
        alertname: SentryLocationWithoutGoodCopy
        exp_alerts:
          - exp_labels: {severity: warning, release: "1.5", scheme: https}
            exp_annotations:
              summary: "release 1.5: 2 locations with no good copy for https users"
              description: "No mirror the redirector offers to https users (a region row, a base URL of that scheme) holds these locations active and healthy: those users get the fallback (a mirror with trouble) or no mirror at all. `+"`sentry report --release 1.5`"+` lists them. With no https:// mirror at all, every location of a product that is not ssl_only is in this case for https users."
      - eval_time: 70m
        alertname: SentryMirrorNotOffered
        exp_alerts:
          - exp_labels: {severity: info, mirror: nr, reason: no_region}
            exp_annotations:
              summary: "the redirector never offers mirror nr (no_region)"
              description: "nr is active but the redirector never sends users there, whatever sentry verified: no_region (add its geoip_mirror_region_map row) or wrong_scheme (its baseurl starts with neither http:// nor https://)."
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool(t), "test", "rules", test).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}
