package checks

import (
	"context"
	"errors"
	"fmt"
)

// ErrGuarded is wrapped by the error of a request its context's guard
// refused (WithGuard). The check's result is KindInternal: the refusal is
// sentry's own business, never a fact about the mirror.
var ErrGuarded = errors.New("request not sent")

type guardKey struct{}

// WithGuard returns a context whose requests ask guard first: every attempt
// of a check, every retry and every redirect hop is sent only while guard
// returns nil. sentry guards the requests made for a claimed work row
// with the row's lease, so that a process that lost its lease (paused,
// cut off from the database) sends no further request for work another
// process has taken over.
func WithGuard(ctx context.Context, guard func() error) context.Context {
	return context.WithValue(ctx, guardKey{}, guard)
}

// guarded returns the refusal of ctx's guard, if any.
func guarded(ctx context.Context) error {
	g, ok := ctx.Value(guardKey{}).(func() error)
	if !ok {
		return nil
	}
	if err := g(); err != nil {
		return fmt.Errorf("%w: %w", ErrGuarded, err)
	}
	return nil
}
