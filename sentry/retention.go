package sentry

import (
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Retention is what the configuration keeps (retention.*), as
// store.Prune deletes it: the daemon's hourly prune and `sentry db prune`
// read it here, so they prune alike.
func Retention(cfg *config.Config) store.Retention {
	return store.Retention{Checks: cfg.Retention.Checks.D(), Rollup: cfg.Retention.Rollup.D(),
		SentryLog: cfg.Retention.SentryLog.D(), Products: cfg.Releases.Products}
}
