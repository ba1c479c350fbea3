package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorsentry/sentry/sentry/report"
)

// The aliases sentry moved (package promote), read from the database at
// each scrape:
//
//	sentry_alias_promoted_timestamp_seconds{alias, product}  when sentry last moved the alias, to the product it named then
var aliasPromotedDesc = desc("sentry_alias_promoted_timestamp_seconds",
	"Unix time at which sentry last moved a bouncer alias (mirror_aliases) to a release's product, labelled with that product.",
	"alias", "product")

// aliasCollector exports each alias's last move.
type aliasCollector struct {
	rep *report.Reporter
	log *slog.Logger
}

func (c *aliasCollector) Describe(ch chan<- *prometheus.Desc) { ch <- aliasPromotedDesc }

func (c *aliasCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	moves, err := c.rep.AliasMoves(ctx)
	if err != nil {
		if c.log != nil {
			c.log.Warn("metrics: cannot read the alias moves", "err", err)
		}
		return
	}
	for _, m := range moves {
		ch <- prometheus.MustNewConstMetric(aliasPromotedDesc, prometheus.GaugeValue, seconds(m.At), m.Alias, m.To)
	}
}
