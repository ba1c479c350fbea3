package metrics

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorsentry/sentry/sentry/report"
)

// The capacity of recent releases, read from the database at each scrape
// (report.RecentCapacity): how long after its first prime's start each
// share of the rating-weighted capacity the redirector can offer held the
// whole release.
//
//	sentry_release_capacity_seconds{release, share}  seconds from the first prime's start to share (0.5, 0.9, 1) of the eligible capacity holding every file
//	sentry_release_capacity_share{release}           share of the eligible capacity that has held every file since the first prime
var (
	capacitySecondsDesc = desc("sentry_release_capacity_seconds",
		"Seconds from a recent release's first prime's start until the given share of the rating-weighted capacity the redirector can offer (region, scheme) held every file verified; absent until reached.",
		"release", "share")
	capacityShareDesc = desc("sentry_release_capacity_share",
		"Share of the rating-weighted capacity the redirector can offer (region, scheme) that has held every file of a recent release verified since its first prime.", "release")
)

// capacityCollector exports the capacity of the releases first primed in
// the last recentReleases (at most maxReleases).
type capacityCollector struct {
	rep *report.Reporter
	log *slog.Logger
}

func (c *capacityCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- capacitySecondsDesc
	ch <- capacityShareDesc
}

func (c *capacityCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	caps, err := c.rep.RecentCapacity(ctx, recentReleases, maxReleases)
	if err != nil {
		// sentry_database_up says the scrape could not read the database.
		if c.log != nil {
			c.log.Warn("metrics: cannot read the releases' capacity", "err", err)
		}
		return
	}
	for _, rc := range caps {
		if rc.Capacity.Share != nil {
			ch <- prometheus.MustNewConstMetric(capacityShareDesc, prometheus.GaugeValue, *rc.Capacity.Share, rc.Release)
		}
		for _, t := range rc.Capacity.Times {
			if t.Seconds != nil {
				ch <- prometheus.MustNewConstMetric(capacitySecondsDesc, prometheus.GaugeValue, *t.Seconds,
					rc.Release, strconv.FormatFloat(t.Share, 'g', -1, 64))
			}
		}
	}
}
