package sentry

import (
	"context"
	"log/slog"
	"time"

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

// pruneEvery is how often the daemon deletes records past their retention.
const pruneEvery = time.Hour

// prune deletes records past their retention (r) at start and every
// pruneEvery, until ctx ends (the daemon stops). Several daemons prune
// side by side without waiting for each other (store.Prune skips rows
// being deleted).
func prune(ctx context.Context, st *store.Store, r store.Retention, log *slog.Logger) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		p, err := st.Prune(ctx, r)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("pruning old records failed; tried again in an hour", "err", err)
		case p != store.Pruned{}:
			log.Info("pruned old records", "checks", p.Checks, "runs", p.Runs, "hourly_counts", p.Hours, "instances", p.Instances,
				"sentry_log", p.Log, "notices", p.Notices, "block_digests", p.Digests)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
