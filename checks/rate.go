package checks

import (
	"context"
	"fmt"

	"golang.org/x/time/rate"
)

type limitKey struct{}

// WithLimit returns a context whose requests wait for lim first: every
// attempt of a check, every retry and every redirect hop takes one token.
// sentry paces all requests to one mirror this way (checks.per_mirror_rate,
// sentry_mirror_settings.max_rate); since a mirror is worked by one sentry
// at a time, the pace holds across every sentry on the database.
func WithLimit(ctx context.Context, lim *rate.Limiter) context.Context {
	return context.WithValue(ctx, limitKey{}, lim)
}

// paced waits for a token of ctx's limiter, if it has one, and reports
// whether it had one.
func paced(ctx context.Context) (bool, error) {
	lim, ok := ctx.Value(limitKey{}).(*rate.Limiter)
	if !ok || lim == nil {
		return false, nil
	}
	if err := lim.Wait(ctx); err != nil {
		return true, fmt.Errorf("%w: waiting for the mirror's request rate: %w", ErrGuarded, err)
	}
	return true, nil
}

// Paced is ctx with a limiter of perSecond requests a second, one at a
// time (a burst of one: the pace holds over any second, not only on
// average).
func Paced(ctx context.Context, perSecond float64) context.Context {
	return WithLimit(ctx, rate.NewLimiter(rate.Limit(perSecond), 1))
}
