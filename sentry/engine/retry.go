package engine

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mirrorsentry/sentry/sentry/record"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// MarkRetryFor bounds how long one mirror's marks are retried through a
// database outage.
const MarkRetryFor = 2 * time.Minute

// Retry calls write until it succeeds, fails for a reason other than the
// database being away (PostgreSQL refused the statement itself, or a fence
// no longer holds), ctx ends, or giveUpAfter has passed (0: no bound but
// ctx). Between tries it waits with backoff, logging what it retries: a
// passing outage must not lose a write that matters (a mirror's marks, a
// run's end, finished work).
func Retry(ctx context.Context, log *slog.Logger, what string, giveUpAfter time.Duration, write func() error) error {
	wait := record.RetryMin
	var giveUp time.Time
	if giveUpAfter > 0 {
		giveUp = time.Now().Add(giveUpAfter)
	}
	for {
		err := write()
		if err == nil || ctx.Err() != nil || !Retryable(err) || (!giveUp.IsZero() && time.Now().After(giveUp)) {
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
		wait = min(2*wait, record.RetryMax)
	}
}

// Retryable reports whether trying a write again may succeed: the
// database was away (connection errors, shutdowns: class 57), out of
// resources (53) or the statement lost a serialization race or a deadlock
// (40). PostgreSQL refusing the statement itself (bad data, a constraint,
// a bug in the statement) and a lost fence are final.
func Retryable(err error) bool {
	if errors.Is(err, store.ErrFenced) {
		return false
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return true
	}
	switch pgErr.Code[:2] {
	case "08", "40", "53", "57", "58":
		return true
	}
	return false
}
