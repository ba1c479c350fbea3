package store

import (
	"context"
	"fmt"
	"time"
)

// Retention is how long sentry keeps its records (retention.checks,
// retention.rollup, retention.sentry_log).
type Retention struct {
	// Checks bounds the age of check rows, of finished runs (with their
	// work rows), of stopped instances and of notices (at least
	// noticesKeptFor); the block digests no live release needs are
	// dropped once older than it (liveDigestsSQL).
	Checks time.Duration
	// Rollup bounds the age of the hourly counts.
	Rollup time.Duration
	// SentryLog bounds the age of the bouncer's sentry_log rows; 0 keeps
	// them all (bouncer's viewers read them).
	SentryLog time.Duration
	// Products are the bouncer product name patterns of releases
	// (releases.products, with {release}): a release with an active
	// product is live, and its block digests are kept.
	Products []string
}

// Pruned counts what a prune deleted.
type Pruned struct {
	Checks, Runs, Hours, Instances int64
	// Log counts sentry_log rows, Notices mail notices, Digests the block
	// digests of contents no live release holds.
	Log, Notices, Digests int64
}

// noticesKeptFor is the least a notice is kept: a state change or a
// certificate warning is mailed within a day (notify's mail window), and
// its notice is what keeps it from being mailed twice.
const noticesKeptFor = 2 * 24 * time.Hour

// digestBatch bounds one delete of block digests: a digest row holds 32
// bytes per block of a file (a 100 MiB file's is 200 KiB).
const digestBatch = 100

// liveDigestsSQL are the contents (algo, hash, size) whose block digests a
// live release needs: the files of every release that has an active
// bouncer product (a name releases.products, $3, gives it), whose manifest
// was recorded or changed, or that was primed, within retention.checks
// ($1). A prime of any other release reads the master's copy again
// (digestMaster): dropping its digests costs that read, never a wrong
// verdict.
const liveDigestsSQL = `
	SELECT DISTINCT f.algo, f.hash, f.size FROM sentry_release_files f JOIN sentry_releases r ON r.id = f.release_id
	WHERE r.updated_at >= now() - $1::interval
	   OR EXISTS (SELECT 1 FROM sentry_runs ru WHERE ru.release_id = r.id AND ru.started_at >= now() - $1::interval)
	   OR EXISTS (SELECT 1 FROM unnest($3::text[]) AS pat(p)
	              JOIN mirror_products mp ON mp.name = replace(pat.p, '{release}', r.name) WHERE mp.active)`

// pruneBatch bounds one delete: each statement holds its locks for a
// moment only, and the writers of new rows never wait long behind it.
const pruneBatch = 5000

// Prune deletes the records older than r in batches of a few thousand
// rows, each its own transaction, until nothing is left or ctx ends (old
// checks and log rows are found through block-range indexes, in the order
// they lie on disk: a batch costs its rows, not a sort of every old row).
// Of the bouncer tables it touches only sentry_log, and only with
// r.SentryLog; it never touches the state history
// (sentry_state_changes), the file states or the releases. Rows other
// pruners (several sentries) are deleting are skipped, not waited for.
func (s *Store) Prune(ctx context.Context, r Retention) (Pruned, error) {
	var p Pruned
	steps := []struct {
		n     *int64
		what  string
		sql   string
		age   time.Duration
		batch int
		more  []any // arguments after the age and the batch
	}{
		{&p.Checks, "checks", `DELETE FROM sentry_checks WHERE id IN (
			SELECT id FROM sentry_checks WHERE checked_at < now() - $1::interval LIMIT $2 FOR UPDATE SKIP LOCKED)`,
			r.Checks, pruneBatch, nil},
		{&p.Runs, "runs", `DELETE FROM sentry_runs WHERE id IN (
			SELECT id FROM sentry_runs WHERE finished_at < now() - $1::interval ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
			r.Checks, pruneBatch, nil},
		{&p.Instances, "instances", `DELETE FROM sentry_instances WHERE id IN (
			SELECT id FROM sentry_instances WHERE last_seen < now() - $1::interval LIMIT $2 FOR UPDATE SKIP LOCKED)`,
			r.Checks, pruneBatch, nil},
		{&p.Hours, "hourly counts", `DELETE FROM sentry_check_hourly WHERE (mirror_id, hour, vantage, result) IN (
			SELECT mirror_id, hour, vantage, result FROM sentry_check_hourly WHERE hour < now() - $1::interval
			ORDER BY hour LIMIT $2 FOR UPDATE SKIP LOCKED)`,
			r.Rollup, pruneBatch, nil},
		// A notice being sent (claimed) is left to its sender.
		{&p.Notices, "notices", `DELETE FROM sentry_notices WHERE (kind, key) IN (
			SELECT kind, key FROM sentry_notices WHERE created_at < now() - $1::interval
			  AND (claimed_until IS NULL OR claimed_until < now()) LIMIT $2 FOR UPDATE SKIP LOCKED)`,
			max(r.Checks, noticesKeptFor), pruneBatch, nil},
		// Digests computed within the window are kept whatever they
		// belong to: a prime reading the master saves them before it
		// records its release.
		{&p.Digests, "block digests", `DELETE FROM sentry_block_digests WHERE (algo, hash, size, block_size) IN (
			SELECT d.algo, d.hash, d.size, d.block_size FROM sentry_block_digests d
			WHERE d.computed_at < now() - $1::interval
			  AND (d.algo, d.hash, d.size) NOT IN (` + liveDigestsSQL + `)
			LIMIT $2 FOR UPDATE SKIP LOCKED)`,
			r.Checks, digestBatch, []any{r.Products}},
	}
	if r.SentryLog > 0 {
		n, err := s.pruneLog(ctx, r.SentryLog)
		p.Log = n
		if err != nil {
			return p, err
		}
	}
	for _, st := range steps {
		if st.age <= 0 {
			continue
		}
		for {
			tag, err := s.pool.Exec(ctx, st.sql, append([]any{st.age, st.batch}, st.more...)...)
			if err != nil {
				return p, s.wrap(fmt.Sprintf("prune old %s", st.what), err)
			}
			*st.n += tag.RowsAffected()
			if tag.RowsAffected() < int64(st.batch) {
				break
			}
		}
	}
	return p, nil
}

// pruneLog deletes the sentry_log rows older than age, oldest first, a
// slice of time at a time: each batch reads the blocks of its slice only
// (the block-range index on log_date), never the rows earlier batches
// left dead, so a first prune of a year of rows costs each row once. A
// slice starts at an hour and doubles while it holds under half a batch.
func (s *Store) pruneLog(ctx context.Context, age time.Duration) (int64, error) {
	var cutoff time.Time
	var oldest *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT now() - $1::interval, (SELECT min(log_date) FROM sentry_log WHERE log_date < now() - $1::interval)`,
		age).Scan(&cutoff, &oldest); err != nil {
		return 0, s.wrap("prune old sentry_log rows", err)
	}
	if oldest == nil {
		return 0, nil
	}
	var n int64
	slice := time.Hour
	for lo := *oldest; lo.Before(cutoff); {
		hi := lo.Add(slice)
		if hi.After(cutoff) {
			hi = cutoff
		}
		tag, err := s.pool.Exec(ctx, `DELETE FROM sentry_log WHERE (mirror_id, log_date) IN (
			SELECT mirror_id, log_date FROM sentry_log WHERE log_date >= $1 AND log_date < $2 LIMIT $3 FOR UPDATE SKIP LOCKED)`,
			lo, hi, pruneBatch)
		if err != nil {
			return n, s.wrap("prune old sentry_log rows", err)
		}
		n += tag.RowsAffected()
		switch {
		case tag.RowsAffected() == pruneBatch:
			// More in this slice: the same again.
		case tag.RowsAffected() < pruneBatch/2:
			lo, slice = hi, 2*slice
		default:
			lo = hi
		}
	}
	return n, nil
}
