package sentry

import (
	"context"
	"log/slog"
	"time"

	"github.com/mirrorsentry/sentry/sentry/store"
)

// markRetryFor bounds how long one mirror's marks are retried through a
// database outage.
const markRetryFor = 2 * time.Minute

// markRetrying writes one mirror's marks (one transaction: all or nothing)
// and, when the database is away, tries again with backoff until it
// answers, ctx ends or markRetryFor has passed: a passing outage must not
// leave a checked mirror unmarked. A refusal of the data itself is not
// retried.
func markRetrying(ctx context.Context, d *Deps, log *slog.Logger, m store.MirrorMarks) error {
	wait := recordRetryMin
	giveUp := time.Now().Add(markRetryFor)
	for {
		err := d.Store.MarkMirror(ctx, m)
		if err == nil || ctx.Err() != nil || isDataError(err) || time.Now().After(giveUp) {
			return err
		}
		log.Warn("marking failed; retrying", "mirror_id", m.MirrorID, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		wait = min(2*wait, recordRetryMax)
	}
}
