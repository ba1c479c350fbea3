package store

import (
	"context"
	"errors"
	"sort"

	"github.com/jackc/pgx/v5"
)

// ErrFenced is returned by a write whose fence no longer holds: the lease
// it was made under (a claimed work row, a run being judged) was taken
// over by another sentry, so what this one found is not written.
var ErrFenced = errors.New("lease lost: the work was taken over by another sentry")

// Fence is a writer's right to write on behalf of a lease it holds: a
// claimed work row, or a run it judges (package engine makes them). A write
// that carries a fence is made only if the lease is still the writer's,
// checked inside the write's own transaction, which keeps the lease locked
// (FOR KEY SHARE: the lease is not deleted meanwhile, and the holder's own
// heartbeat is not held up) until it commits.
type Fence interface {
	// FenceKey names the lease. Writes check their fences in key order,
	// so that two writers never wait for each other's locks in a circle.
	FenceKey() string
	// Holds reports, inside tx, whether the lease is still the writer's,
	// and locks it (FOR KEY SHARE) until tx ends.
	Holds(ctx context.Context, tx pgx.Tx) (bool, error)
}

// admit checks the distinct fences of a write in key order and returns
// those that hold. A nil fence always holds (writes no lease guards).
func admit(ctx context.Context, tx pgx.Tx, fences []Fence) (map[Fence]bool, error) {
	held := make(map[Fence]bool, len(fences))
	distinct := make([]Fence, 0, len(fences))
	seen := make(map[Fence]bool, len(fences))
	for _, f := range fences {
		if f == nil {
			held[nil] = true
			continue
		}
		if !seen[f] {
			seen[f] = true
			distinct = append(distinct, f)
		}
	}
	sort.Slice(distinct, func(i, j int) bool { return distinct[i].FenceKey() < distinct[j].FenceKey() })
	for _, f := range distinct {
		ok, err := f.Holds(ctx, tx)
		if err != nil {
			return nil, err
		}
		held[f] = ok
	}
	return held, nil
}

// fenced checks a write's fence inside its transaction.
func fenced(ctx context.Context, tx pgx.Tx, f Fence) error {
	if f == nil {
		return nil
	}
	ok, err := f.Holds(ctx, tx)
	if err != nil {
		return err
	}
	if !ok {
		return ErrFenced
	}
	return nil
}

// execFenced runs one statement in a transaction of its own under fence
// (nil: none): ErrFenced, and nothing written, when it no longer holds.
func (s *Store) execFenced(ctx context.Context, fence Fence, sql string, args ...any) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := fenced(ctx, tx, fence); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, sql, args...)
		return err
	})
}
