package metrics_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/metrics"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/report"
)

// TestMetricsReleaseCapacity: the capacity series carry what the release
// report says: the share reached, and the seconds to each share reached
// (none for a share not reached).
func TestMetricsReleaseCapacity(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	w := world.NewReportWorld(t, func(d *sentry.Deps) observe.Observer {
		m = metrics.New(d.Store.Pool(), d.Logger)
		return m
	})
	fams := world.Scrape(t, m.Handler())
	rel, err := report.New(w.Pool(), nil).Release(context.Background(), "1.5")
	if err != nil {
		t.Fatal(err)
	}
	c := rel.Capacity
	// good1, good2 and flaky (down since, but it held every file after
	// the prime) of 100: corrupt and missing never held the release.
	if c.Share == nil || *c.Share != 0.85 {
		t.Fatalf("capacity reached %v, want 0.85", c.Share)
	}
	if v, ok := world.Value(t, fams, "sentry_release_capacity_share", map[string]string{"release": "1.5"}); !ok || v != 0.85 {
		t.Errorf("sentry_release_capacity_share = %v (present %v), want 0.85", v, ok)
	}
	reached := 0
	for _, tm := range c.Times {
		share := strconv.FormatFloat(tm.Share, 'g', -1, 64)
		v, ok := world.Value(t, fams, "sentry_release_capacity_seconds", map[string]string{"release": "1.5", "share": share})
		switch {
		case tm.Seconds == nil && ok:
			t.Errorf("share %s not reached, but exported (%v)", share, v)
		case tm.Seconds != nil && (!ok || v != *tm.Seconds):
			t.Errorf("share %s: exported %v (present %v), the report says %v", share, v, ok, *tm.Seconds)
		}
		if tm.Seconds != nil {
			reached++
		}
	}
	if reached != 1 { // 0.5 only
		t.Errorf("%d shares reached, want 1 (%+v)", reached, c.Times)
	}
}

// TestMetricsAliasPromoted: an alias sentry moved is exported with the
// time of its last move and the product it named then.
func TestMetricsAliasPromoted(t *testing.T) {
	t.Parallel()
	w := world.New(t, &world.Options{Config: func(c *config.Config) {
		c.Releases.Aliases = map[string]string{"firefox-latest": "Firefox-{release}"}
	}})
	w.Static(t, "good")
	w.Prime(t)
	m := metrics.New(w.Pool(), w.Deps.Logger)
	fams := world.Scrape(t, m.Handler())
	var at time.Time
	w.QueryRow(t, `SELECT at FROM sentry_alias_moves WHERE alias = 'firefox-latest' AND to_product = 'Firefox-1.5'`, nil, &at)
	v, ok := world.Value(t, fams, "sentry_alias_promoted_timestamp_seconds", map[string]string{"alias": "firefox-latest", "product": "Firefox-1.5"})
	if !ok || v != float64(at.UnixNano())/1e9 {
		t.Errorf("sentry_alias_promoted_timestamp_seconds = %v (present %v), moved at %v", v, ok, at)
	}
}
