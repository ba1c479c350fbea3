package engine

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// How a row is claimed.
//
// A row is claimable by a worker when its run is running and planned, of a
// kind this process registers, no one holds it (or its holder's lease ran
// out), this worker's vantage point has something to do on it (check the
// mirror's reachability from here, or its files, unless the mirror was
// unreachable from here), and the worker is not its last holder (a worker
// never claims a row back from itself: its own copy of the work may still
// be running).
//
// A mirror is held by one row at a time, whatever run the row belongs to:
// a prime, a scheduled sweep and a manual sweep of the same mirror are
// worked one after the other, by whichever sentries claim them, so that
// the per-mirror caps (checks.per_mirror_concurrency and
// sentry_mirror_settings.max_concurrency, enforced within a row) hold
// across every sentry and every run at once. Runs of a higher priority
// come first (Kind.Priority, a run's sentry_runs.priority): their rows are
// claimed before those of lower ones; and a row of a run that yields
// (Kind.Yield) is not claimed while its mirror has a row of a higher run
// waiting (even one another claimer is taking right now). Primes are
// registered above sweeps, and sweeps yield, so that a new release is not
// kept waiting behind sweeps.
//
// Claiming is one transaction:
//  1. the candidate rows, in order (higher priority first; rows whose files
//     are still to do first; then by run and position: a prime's rows by
//     descending rating), read without locking them, so that a claimer
//     running at the same moment sees the same order and is held back only
//     by the mirrors this one actually takes;
//  2. walking the candidates in order, a transaction-scoped advisory lock
//     on each mirror, tried without waiting (a mirror another claimer is
//     claiming right now is skipped), only as many at a time as rows are
//     still wanted;
//  3. with those locks held, a fresh look (a new statement sees every claim
//     committed before the locks were taken) at which of the mirrors are
//     held by another row with a live lease; 2 and 3 again with the next
//     candidates until n mirrors are free or none is left;
//  4. the first candidates of free, distinct mirrors, up to n (pick), become
//     this worker's: claimed_by, lease_until and claims (the fence token)
//     + 1, each row taken only if it is still claimable (locked in key
//     order, its state checked again: a lapsed holder completing it at the
//     same moment wins or loses cleanly).
//
// A concurrent claimer therefore takes the next rows in order, not rows
// far down the list: the order of a run's rows holds across sentries.

// lockMirror is the first key of the advisory locks taken on mirrors while
// claiming (the second is the mirror's id).
const lockMirror = 0x73656e74 // "sent"

// claim claims up to n rows (of run runID only, when not 0) for w, in q
// (a transaction: the locks of steps 2 and 3 last until it ends), and
// returns them.
func (e *Engine) claim(ctx context.Context, tx pgx.Tx, w *Worker, runID int64, n int) ([]*Row, error) {
	// 1. Candidates. The held-mirror test here uses the statement's
	// snapshot; it only spares step 3 obvious losers.
	rows, err := tx.Query(ctx, `
		SELECT w.run_id, w.mirror_id
		FROM sentry_work w JOIN sentry_runs r ON r.id = w.run_id
		WHERE NOT w.done AND r.outcome = 'running' AND r.ready AND ($3 = 0 OR w.run_id = $3)
		  AND (w.claimed_by IS NULL OR w.lease_until < now()) AND w.claimed_by IS DISTINCT FROM $1
		  AND ($2 = ANY (w.needs) OR (NOT w.files_done AND NOT $2 = ANY (w.not_from)))
		  AND NOT EXISTS (SELECT 1 FROM sentry_work o WHERE o.mirror_id = w.mirror_id AND o.run_id <> w.run_id
		      AND NOT o.done AND o.claimed_by IS NOT NULL AND o.lease_until >= now())
		  AND r.kind = ANY ($5)
		  AND (NOT r.yields OR NOT EXISTS (SELECT 1 FROM sentry_work p JOIN sentry_runs pr ON pr.id = p.run_id
		      WHERE p.mirror_id = w.mirror_id AND pr.priority > r.priority AND pr.outcome = 'running' AND pr.ready AND NOT p.done
		        AND (p.claimed_by IS NULL OR p.lease_until < now())))
		ORDER BY r.priority DESC, w.files_done, w.run_id, w.seq
		LIMIT $4`, w.id, e.opts.Vantage, runID, 4*n, e.known)
	if err != nil {
		return nil, err
	}
	cands, err := pgx.CollectRows(rows, pgx.RowToStructByPos[WorkKey])
	if err != nil || len(cands) == 0 {
		return nil, err
	}
	// 2 and 3. Lock the candidates' mirrors in order, as many at a time as
	// rows are still wanted, skipping those another claimer has, and see
	// which of those locked are held now.
	var locked, held []int32
	tried := map[int]bool{}
	next := 0
	for free := 0; free < n && next < len(cands); {
		var batch []int32
		for ; next < len(cands) && len(batch) < n-free; next++ {
			if m := cands[next].MirrorID; !tried[m] {
				tried[m] = true
				batch = append(batch, int32(m))
			}
		}
		rows, err = tx.Query(ctx, `SELECT m FROM unnest($1::int[]) m WHERE pg_try_advisory_xact_lock($2, m)`, batch, lockMirror)
		if err != nil {
			return nil, err
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return nil, err
		}
		if len(got) == 0 {
			continue
		}
		rows, err = tx.Query(ctx, `SELECT DISTINCT o.mirror_id FROM sentry_work o
			WHERE o.mirror_id = ANY ($1) AND NOT o.done AND o.claimed_by IS NOT NULL AND o.lease_until >= now()`, got)
		if err != nil {
			return nil, err
		}
		busy, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return nil, err
		}
		locked, held = append(locked, got...), append(held, busy...)
		free += len(got) - len(busy)
	}
	// 4. Claim the first candidate of each free mirror, if still claimable.
	picked := pick(cands, locked, held, n)
	if len(picked) == 0 {
		return nil, nil
	}
	runIDs := make([]int64, len(picked))
	mirrorIDs := make([]int32, len(picked))
	for i, k := range picked {
		runIDs[i], mirrorIDs[i] = k.RunID, int32(k.MirrorID)
	}
	rows, err = tx.Query(ctx, `
		WITH claimable AS (
			SELECT w.run_id, w.mirror_id FROM sentry_work w JOIN sentry_runs r ON r.id = w.run_id
			WHERE (w.run_id, w.mirror_id) IN (SELECT * FROM unnest($3::bigint[], $4::int[]))
			  AND NOT w.done AND r.outcome = 'running' AND r.ready
			  AND (w.claimed_by IS NULL OR w.lease_until < now()) AND w.claimed_by IS DISTINCT FROM $1
			  AND ($5 = ANY (w.needs) OR (NOT w.files_done AND NOT $5 = ANY (w.not_from)))
			ORDER BY w.run_id, w.mirror_id
			FOR NO KEY UPDATE OF w)
		UPDATE sentry_work w SET claimed_by = $1, lease_until = now() + $2::interval, claims = w.claims + 1
		FROM claimable c, sentry_runs r
		WHERE w.run_id = c.run_id AND w.mirror_id = c.mirror_id AND r.id = w.run_id
		RETURNING w.run_id, w.mirror_id, r.kind, r.started_at, r.params, $5 = ANY (w.needs), NOT w.files_done, w.claims`,
		w.id, e.opts.Lease, runIDs, mirrorIDs, e.opts.Vantage)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Row, error) {
		row := &Row{rec: w.rec, lease: e.opts.Lease}
		err := r.Scan(&row.Run.ID, &row.MirrorID, &row.Run.Kind, &row.Run.StartedAt, &row.Run.Params,
			&row.Reach, &row.Files, &row.Claims)
		row.fence = rowFence{run: row.Run.ID, mirror: row.MirrorID, token: row.Claims}
		row.fenced = row.fence
		return row, err
	})
}

// pick chooses the rows to claim among the candidates, in their order: the
// first candidate of each mirror this claimer locked and no other row
// holds, up to n.
func pick(cands []WorkKey, locked, held []int32, n int) []WorkKey {
	free := make(map[int]bool, len(locked))
	for _, m := range locked {
		free[int(m)] = true
	}
	for _, m := range held {
		delete(free, int(m))
	}
	var out []WorkKey
	for _, c := range cands {
		if len(out) == n {
			break
		}
		if free[c.MirrorID] {
			delete(free, c.MirrorID)
			out = append(out, c)
		}
	}
	return out
}

// WorkKey names a work row.
type WorkKey struct {
	RunID    int64
	MirrorID int
}

// claimOnce claims what w has room for, in a transaction of its own.
func (e *Engine) claimOnce(ctx context.Context, w *Worker) ([]*Row, error) {
	return w.claiming(func(free int) ([]*Row, error) {
		if free <= 0 {
			return nil, nil
		}
		var rows []*Row
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) (err error) {
			rows, err = e.claim(ctx, tx, w, w.onlyRun(), free)
			return err
		})
		if err != nil {
			return nil, e.wrap("claim work", err)
		}
		return rows, nil
	})
}
