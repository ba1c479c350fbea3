package store

import (
	"context"
	"fmt"
	"time"
)

// Retention is how long sentry keeps its records (retention.checks,
// retention.rollup).
type Retention struct {
	// Checks bounds the age of check rows, of finished runs (with their
	// work rows) and of stopped instances.
	Checks time.Duration
	// Rollup bounds the age of the hourly counts.
	Rollup time.Duration
}

// Pruned counts what a prune deleted.
type Pruned struct {
	Checks, Runs, Hours, Instances int64
}

// pruneBatch bounds one delete: each statement holds its locks for a
// moment only, and the writers of new rows never wait long behind it.
const pruneBatch = 5000

// Prune deletes the records older than r in batches of a few thousand
// rows, each its own transaction, until nothing is left or ctx ends (old
// checks are found through a block-range index, in the order they lie on
// disk: a batch costs its rows, not a sort of every old row). It never touches the bouncer tables (sentry_log included), the
// state history (sentry_state_changes), the file states or the releases.
// Rows other pruners (several sentries) are deleting are skipped, not
// waited for.
func (s *Store) Prune(ctx context.Context, r Retention) (Pruned, error) {
	var p Pruned
	steps := []struct {
		n    *int64
		what string
		sql  string
		age  time.Duration
	}{
		{&p.Checks, "checks", `DELETE FROM sentry_checks WHERE id IN (
			SELECT id FROM sentry_checks WHERE checked_at < now() - $1::interval LIMIT $2 FOR UPDATE SKIP LOCKED)`,
			r.Checks},
		{&p.Runs, "runs", `DELETE FROM sentry_runs WHERE id IN (
			SELECT id FROM sentry_runs WHERE finished_at < now() - $1::interval ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
			r.Checks},
		{&p.Instances, "instances", `DELETE FROM sentry_instances WHERE id IN (
			SELECT id FROM sentry_instances WHERE last_seen < now() - $1::interval LIMIT $2 FOR UPDATE SKIP LOCKED)`,
			r.Checks},
		{&p.Hours, "hourly counts", `DELETE FROM sentry_check_hourly WHERE (mirror_id, hour, vantage, result) IN (
			SELECT mirror_id, hour, vantage, result FROM sentry_check_hourly WHERE hour < now() - $1::interval
			ORDER BY hour LIMIT $2 FOR UPDATE SKIP LOCKED)`,
			r.Rollup},
	}
	for _, st := range steps {
		if st.age <= 0 {
			continue
		}
		for {
			tag, err := s.pool.Exec(ctx, st.sql, st.age, pruneBatch)
			if err != nil {
				return p, s.wrap(fmt.Sprintf("prune old %s", st.what), err)
			}
			*st.n += tag.RowsAffected()
			if tag.RowsAffected() < pruneBatch {
				break
			}
		}
	}
	return p, nil
}
