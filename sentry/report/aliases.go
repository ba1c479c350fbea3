package report

import (
	"context"
	"fmt"

	"github.com/mirrorsentry/sentry/sentry/store"
)

// AliasMoves returns the last move sentry made of each alias
// (sentry_alias_moves), by alias.
func (r *Reporter) AliasMoves(ctx context.Context) ([]store.AliasMove, error) {
	moves, err := store.LastAliasMoves(ctx, r.pool)
	if err != nil {
		return nil, fmt.Errorf("alias moves: %w", err)
	}
	return moves, nil
}
