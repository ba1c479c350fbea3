package store

import (
	"context"
	"fmt"
	"time"
)

// How a pull-through cache is primed (sentry_mirror_priming.prime_by).
const (
	// PrimeByRange: a one-byte range makes the cache fetch and keep the
	// whole file.
	PrimeByRange = "range"
	// PrimeByGet: the cache keeps only what it was asked for in full.
	PrimeByGet = "get"
)

// Priming is what a prime learned of how to prime a mirror.
type Priming struct {
	By        string // PrimeByRange or PrimeByGet
	Reason    string
	LearnedAt time.Time
}

// Primings returns what primes learned of the mirrors that have a row.
func (s *Store) Primings(ctx context.Context) (map[int]Priming, error) {
	rows, err := s.pool.Query(ctx, `SELECT mirror_id, prime_by, reason, learned_at FROM sentry_mirror_priming`)
	if err != nil {
		return nil, s.wrap("read mirror priming", err)
	}
	out := map[int]Priming{}
	defer rows.Close()
	for rows.Next() {
		var id int
		var p Priming
		if err := rows.Scan(&id, &p.By, &p.Reason, &p.LearnedAt); err != nil {
			return nil, s.wrap("read mirror priming", err)
		}
		out[id] = p
	}
	return out, s.wrap("read mirror priming", rows.Err())
}

// SavePriming records how a mirror is primed, under fence (the work row
// of the prime that learned it): ErrFenced when it no longer holds.
func (s *Store) SavePriming(ctx context.Context, mirrorID int, by, reason string, fence Fence) error {
	err := s.execFenced(ctx, fence, `INSERT INTO sentry_mirror_priming (mirror_id, prime_by, reason) VALUES ($1, $2, $3)
		ON CONFLICT (mirror_id) DO UPDATE SET prime_by = excluded.prime_by, reason = excluded.reason, learned_at = now()`,
		mirrorID, by, reason)
	return s.wrap(fmt.Sprintf("save how mirror %d is primed", mirrorID), err)
}

// ForgetPriming forgets how a mirror is primed, so that the next sampled
// prime learns it again. It reports whether there was anything to forget.
func (s *Store) ForgetPriming(ctx context.Context, mirrorID int) (bool, error) {
	forgot, err := forgetPriming(ctx, s.pool, mirrorID)
	return forgot, s.wrap(fmt.Sprintf("forget how mirror %d is primed", mirrorID), err)
}

// forgetPriming deletes the mirror's sentry_mirror_priming row through q,
// and reports whether there was one.
func forgetPriming(ctx context.Context, q Querier, mirrorID int) (bool, error) {
	tag, err := q.Exec(ctx, `DELETE FROM sentry_mirror_priming WHERE mirror_id = $1`, mirrorID)
	return err == nil && tag.RowsAffected() > 0, err
}
