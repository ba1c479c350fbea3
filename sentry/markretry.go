package sentry

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mirrorsentry/sentry/sentry/store"
)

// markRetryFor bounds how long one mirror's marks are retried through a
// database outage.
const markRetryFor = 2 * time.Minute

// retryDB calls write until it succeeds, fails for a reason other than the
// database being away (PostgreSQL refused the statement itself), ctx ends,
// or giveUpAfter has passed (0: no bound but ctx). Between tries it waits
// with backoff, logging what it retries: a passing outage must not lose a
// write that matters (a mirror's marks, a run's end, finished work).
func retryDB(ctx context.Context, log *slog.Logger, what string, giveUpAfter time.Duration, write func() error) error {
	wait := recordRetryMin
	var giveUp time.Time
	if giveUpAfter > 0 {
		giveUp = time.Now().Add(giveUpAfter)
	}
	for {
		err := write()
		if err == nil || ctx.Err() != nil || isRefused(err) || (!giveUp.IsZero() && time.Now().After(giveUp)) {
			return err
		}
		log.Warn(what+" failed; retrying", "retry_in", wait, "err", err)
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

// markRetrying writes one mirror's marks (one transaction: all or
// nothing), retrying through a database outage for up to markRetryFor.
func markRetrying(ctx context.Context, d *Deps, log *slog.Logger, m store.MirrorMarks) error {
	return retryDB(ctx, log.With("mirror_id", m.MirrorID), "marking", markRetryFor, func() error {
		return d.Store.MarkMirror(ctx, m)
	})
}

// isRefused reports whether err is PostgreSQL answering that it will not
// run the statement (bad data, a constraint, a bug in the statement): what
// trying again cannot change. Connection errors, shutdowns (class 57),
// exhausted resources (53) and serialization failures or deadlocks (40)
// are worth another try.
func isRefused(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "08", "40", "53", "57", "58":
		return false
	}
	return true
}
