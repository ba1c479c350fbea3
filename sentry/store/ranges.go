package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mirrorsentry/sentry/checks"
)

// RangeWay is what sampled checks learned of how a mirror's server
// answers ranges (sentry_mirror_ranges).
type RangeWay struct {
	Way       checks.RangeWay
	Reason    string
	LearnedAt time.Time
}

// ErrNoRangeWay is wrapped by SaveRangeWay's error for a way that says
// nothing (checks.RangeWay.Known false).
var ErrNoRangeWay = errors.New("no range way to save")

// RangeWays returns what was learned of the mirrors that have a row.
func (s *Store) RangeWays(ctx context.Context) (map[int]RangeWay, error) {
	rows, err := s.pool.Query(ctx, `SELECT mirror_id, coalesce(max_ranges, 0), in_full, reason, learned_at FROM sentry_mirror_ranges`)
	if err != nil {
		return nil, s.wrap("read how mirrors answer ranges", err)
	}
	defer rows.Close()
	out := map[int]RangeWay{}
	for rows.Next() {
		var id int
		var w RangeWay
		if err := rows.Scan(&id, &w.Way.MaxRanges, &w.Way.InFull, &w.Reason, &w.LearnedAt); err != nil {
			return nil, s.wrap("read how mirrors answer ranges", err)
		}
		out[id] = w
	}
	return out, s.wrap("read how mirrors answer ranges", rows.Err())
}

// SaveRangeWay records how a mirror's server answers ranges, under fence
// (the work row of the check that learned it): ErrFenced when it no
// longer holds. A way is only ever made stricter (a lower limit, or no
// range honoured): a way less strict than the one recorded, learned by
// another sentry at the same time, leaves the row as it is.
func (s *Store) SaveRangeWay(ctx context.Context, mirrorID int, way checks.RangeWay, reason string, fence Fence) error {
	if !way.Known() {
		return fmt.Errorf("store: mirror %d: %w", mirrorID, ErrNoRangeWay)
	}
	var maxRanges *int // NULL when no range is honoured
	if !way.InFull {
		maxRanges = &way.MaxRanges
	}
	err := s.execFenced(ctx, fence, `INSERT INTO sentry_mirror_ranges AS r (mirror_id, max_ranges, in_full, reason) VALUES ($1, $2, $3, $4)
		ON CONFLICT (mirror_id) DO UPDATE SET max_ranges = excluded.max_ranges, in_full = excluded.in_full,
			reason = excluded.reason, learned_at = now()
		WHERE NOT r.in_full AND (excluded.in_full OR excluded.max_ranges < r.max_ranges)`,
		mirrorID, maxRanges, way.InFull, reason)
	return s.wrap(fmt.Sprintf("save how mirror %d answers ranges", mirrorID), err)
}

// ForgetRangeWay forgets how a mirror's server answers ranges, so that
// the next sampled check learns it again (after its configuration
// changed, say). It reports whether there was anything to forget.
func (s *Store) ForgetRangeWay(ctx context.Context, mirrorID int) (bool, error) {
	forgot, err := forgetRangeWay(ctx, s.pool, mirrorID)
	return forgot, s.wrap(fmt.Sprintf("forget how mirror %d answers ranges", mirrorID), err)
}

// forgetRangeWay deletes the mirror's sentry_mirror_ranges row through q,
// and reports whether there was one.
func forgetRangeWay(ctx context.Context, q Querier, mirrorID int) (bool, error) {
	tag, err := q.Exec(ctx, `DELETE FROM sentry_mirror_ranges WHERE mirror_id = $1`, mirrorID)
	return err == nil && tag.RowsAffected() > 0, err
}
