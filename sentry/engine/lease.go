package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/sentry/store"
)

// Leases, heartbeats and fences.
//
// A claimed row is its worker's for cluster.lease from the claim; the
// worker's heartbeat, every third of a lease, renews the rows it works on
// (and the runs it judges), by token, and gives back any row the database
// says it holds but it has not worked on for two beats in a row (a
// give-back that failed during an outage). A row the heartbeat could not
// renew was taken over: its work is cancelled. No lock of the worker is
// held while a heartbeat or a claim waits for the database, so that a
// hanging database never keeps the watchdog from stopping the work.
//
// Fencing. Every claim changes the row's token (sentry_work.claims; a
// judging's is sentry_runs.judge_token). Everything written on a row's or a
// judging's behalf — checks, marks, the row's completion, the run's end —
// carries the token and is written only while it is still current,
// checked in the write's own transaction (store.Fence). The check takes a
// KEY SHARE lock, which the heartbeats and claims (FOR NO KEY UPDATE) do
// not wait for: a slow write must never hold back its own process's
// heartbeat, or the process would fence itself out of its own work. A worker whose
// heartbeat has not succeeded for two thirds of a lease stops its own work
// on its rows (self-fencing): their contexts are cancelled and every
// request for them is refused before it is sent (checks.WithGuard), so that
// a process paused or cut off past its lease never sends another request
// for a row someone else may hold by then. Validity is measured on this
// process's monotonic clock from the moment the last successful heartbeat
// (or the claim) was sent, which is never later than the database's own
// start of the lease.

// rowFence is the lease of one claimed row, with the token it was claimed
// with.
type rowFence struct {
	run    int64
	mirror int
	token  int
}

func (f rowFence) FenceKey() string { return fmt.Sprintf("work %020d %010d", f.run, f.mirror) }

func (f rowFence) Holds(ctx context.Context, tx pgx.Tx) (bool, error) {
	return exists(tx.QueryRow(ctx, `SELECT 1 FROM sentry_work WHERE run_id = $1 AND mirror_id = $2 AND claims = $3 FOR KEY SHARE`,
		f.run, f.mirror, f.token))
}

// judgeFence is the lease of a run's judging, with its token.
type judgeFence struct {
	run   int64
	token int
}

func (f judgeFence) FenceKey() string { return fmt.Sprintf("run %020d", f.run) }

func (f judgeFence) Holds(ctx context.Context, tx pgx.Tx) (bool, error) {
	return exists(tx.QueryRow(ctx, `SELECT 1 FROM sentry_runs WHERE id = $1 AND judge_token = $2 AND outcome = 'running' FOR KEY SHARE`,
		f.run, f.token))
}

func exists(row pgx.Row) (bool, error) {
	var one int
	err := row.Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

var (
	_ store.Fence = rowFence{}
	_ store.Fence = judgeFence{}
)

// errLapsed is why a row's requests are refused once its lease may have
// run out.
var errLapsed = errors.New("this sentry's lease on the work may have run out (no heartbeat for two thirds of cluster.lease)")

// heldLease is a lease with its token: what the heartbeat renews.
type heldLease struct {
	run    int64
	mirror int // 0: the run's judging
	token  int
}

// renew is one heartbeat: the instance is alive; the leases in held are
// renewed (by token: a row taken over is not); the rows in back are given
// back, if they are still the instance's with that token. It returns the
// leases it renewed, and the rows the database says the instance holds
// that are not in held: orphans of a give-back that failed (or claims made
// while the beat was on its way; the worker gives back only rows that are
// orphans on two beats in a row).
func (e *Engine) renew(ctx context.Context, id string, held, back []heldLease) (renewed map[heldLease]bool, orphans []heldLease, err error) {
	var runs, judgeRuns, backRuns []int64
	var mirrors, backMirrors []int32
	var tokens, judgeTokens, backTokens []int32
	for _, h := range held {
		if h.mirror == 0 {
			judgeRuns, judgeTokens = append(judgeRuns, h.run), append(judgeTokens, int32(h.token))
			continue
		}
		runs, mirrors, tokens = append(runs, h.run), append(mirrors, int32(h.mirror)), append(tokens, int32(h.token))
	}
	for _, h := range back {
		backRuns, backMirrors, backTokens = append(backRuns, h.run), append(backMirrors, int32(h.mirror)), append(backTokens, int32(h.token))
	}
	renewed = map[heldLease]bool{}
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE sentry_instances SET last_seen = now(), stopped_at = NULL WHERE id = $1`, id); err != nil {
			return err
		}
		// Judgings first, then rows, each in key order: every writer
		// takes run rows before work rows (store.Fence keys sort the
		// same way), so heartbeats and fenced writes never deadlock.
		rows, err := tx.Query(ctx, `
			UPDATE sentry_runs r SET judge_until = now() + $2::interval
			WHERE r.id IN (SELECT id FROM sentry_runs WHERE judge_by = $1 AND outcome = 'running'
			               AND (id, judge_token) IN (SELECT * FROM unnest($3::bigint[], $4::int[])) ORDER BY id FOR NO KEY UPDATE)
			RETURNING r.id, r.judge_token`, id, e.opts.Lease, judgeRuns, judgeTokens)
		if err != nil {
			return err
		}
		for rows.Next() {
			var h heldLease
			if err := rows.Scan(&h.run, &h.token); err != nil {
				rows.Close()
				return err
			}
			renewed[h] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `
			WITH mine AS (SELECT w.run_id, w.mirror_id, w.claims,
			                     (w.run_id, w.mirror_id, w.claims) IN (SELECT * FROM unnest($3::bigint[], $4::int[], $5::int[])) AS keep,
			                     (w.run_id, w.mirror_id, w.claims) IN (SELECT * FROM unnest($6::bigint[], $7::int[], $8::int[])) AS back
			              FROM sentry_work w WHERE w.claimed_by = $1 AND NOT w.done ORDER BY 1, 2 FOR NO KEY UPDATE),
			     renewed AS (UPDATE sentry_work w SET lease_until = now() + $2::interval
			                 FROM mine WHERE mine.keep AND w.run_id = mine.run_id AND w.mirror_id = mine.mirror_id),
			     given AS (UPDATE sentry_work w SET claimed_by = NULL, lease_until = NULL
			               FROM mine WHERE mine.back AND NOT mine.keep AND w.run_id = mine.run_id AND w.mirror_id = mine.mirror_id
			               RETURNING w.run_id),
			     told AS (SELECT pg_notify($9, 'released') WHERE EXISTS (SELECT 1 FROM given))
			SELECT run_id, mirror_id, claims, keep FROM mine, (SELECT count(*) FROM told) t WHERE keep OR NOT back`,
			id, e.opts.Lease, runs, mirrors, tokens, backRuns, backMirrors, backTokens, WorkChannel)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var h heldLease
			var keep bool
			if err := rows.Scan(&h.run, &h.mirror, &h.token, &keep); err != nil {
				return err
			}
			if keep {
				renewed[h] = true
			} else {
				orphans = append(orphans, h)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, nil, e.wrap("heartbeat", err)
	}
	return renewed, orphans, nil
}

// giveBack returns a held row undone, for another to claim at once.
func (e *Engine) giveBack(ctx context.Context, f rowFence, id string) error {
	_, err := e.pool.Exec(ctx, `WITH back AS (UPDATE sentry_work SET claimed_by = NULL, lease_until = NULL
		WHERE run_id = $1 AND mirror_id = $2 AND claims = $3 AND claimed_by = $4 AND NOT done RETURNING run_id)
		SELECT pg_notify($5, run_id::text) FROM back`, f.run, f.mirror, f.token, id, WorkChannel)
	return e.wrap("give back work", err)
}

// complete records what a worker did with a row it holds (fenced by its
// token) and gives the row back, done or for another vantage point. It
// returns false when the row was no longer the worker's: then nothing is
// written.
func (e *Engine) complete(ctx context.Context, f rowFence, id string, res Result) (bool, error) {
	verdict, err := marshalOrNull(res.Verdict)
	if err != nil {
		return false, fmt.Errorf("encode verdict: %w", err)
	}
	var files []byte
	if res.Files != nil {
		if files, err = marshalOrNull(res.Files); err != nil {
			return false, fmt.Errorf("encode result: %w", err)
		}
	}
	// One statement: the row's new facts, given back, and done when
	// nothing is left on it — every vantage point checked reachability,
	// and the files are done or no vantage point can reach the mirror.
	// Everyone is told (the run may be ready for judging, or the row
	// left for another vantage point).
	var ok bool
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		var done bool
		err := tx.QueryRow(ctx, `
			WITH next AS (SELECT run_id, mirror_id, array_remove(needs, $5) AS needs,
			                     CASE WHEN $7 THEN array_append(array_remove(not_from, $5), $5) ELSE not_from END AS not_from,
			                     files_done OR $8::jsonb IS NOT NULL AS files_done
			              FROM sentry_work
			              WHERE run_id = $1 AND mirror_id = $2 AND claims = $3 AND claimed_by = $4 AND NOT done)
			UPDATE sentry_work w SET
				needs = next.needs, not_from = next.not_from, files_done = next.files_done,
				verdicts = CASE WHEN $6::jsonb = 'null' THEN w.verdicts ELSE w.verdicts || jsonb_build_object($5::text, $6::jsonb) END,
				result = coalesce($8::jsonb, w.result),
				done_by = CASE WHEN $8::jsonb IS NOT NULL THEN $4 ELSE w.done_by END,
				claimed_by = NULL, lease_until = NULL,
				done = cardinality(next.needs) = 0 AND (next.files_done OR (cardinality(w.vantages) > 0 AND w.vantages <@ next.not_from)),
				done_at = CASE WHEN cardinality(next.needs) = 0 AND (next.files_done OR (cardinality(w.vantages) > 0 AND w.vantages <@ next.not_from))
				               THEN now() END
			FROM next WHERE w.run_id = next.run_id AND w.mirror_id = next.mirror_id
			RETURNING w.done`,
			f.run, f.mirror, f.token, id, e.opts.Vantage, verdict, res.Unreachable, files).Scan(&done)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		ok = true
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2::bigint::text)`, WorkChannel, f.run)
		return err
	})
	if err != nil {
		return false, e.wrap("complete work", err)
	}
	return ok, nil
}

func marshalOrNull(v any) ([]byte, error) {
	if v == nil {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

// forgetGoneVantages drops from the open rows of running runs the vantage
// points no working instance has any more (every instance of a region
// stopped or died mid-run), so that the run can end without them. It
// returns how many rows changed.
func (e *Engine) forgetGoneVantages(ctx context.Context) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			WITH live AS (
				SELECT r.id AS run_id, coalesce(array_agg(DISTINCT i.vantage) FILTER (WHERE i.id IS NOT NULL), '{}') AS v
				FROM sentry_runs r
				LEFT JOIN sentry_instances i ON i.stopped_at IS NULL AND i.last_seen > now() - $1::interval
				     AND (i.role = 'daemon' OR i.id = r.instance)
				WHERE r.outcome = 'running'
				GROUP BY r.id)
			UPDATE sentry_work w SET
				needs = ARRAY(SELECT unnest(w.needs) INTERSECT SELECT unnest(live.v)),
				vantages = ARRAY(SELECT unnest(w.vantages) INTERSECT SELECT unnest(live.v))
			FROM live
			WHERE w.run_id = live.run_id AND NOT w.done AND (w.claimed_by IS NULL OR w.lease_until < now())
			  AND cardinality(w.vantages) > 0 AND NOT (w.vantages <@ live.v)`, e.opts.Lease)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		n = int(tag.RowsAffected())
		if _, err := tx.Exec(ctx, `UPDATE sentry_work SET done = true, done_at = now(), claimed_by = NULL, lease_until = NULL
			WHERE NOT done AND (claimed_by IS NULL OR lease_until < now()) AND cardinality(needs) = 0
			  AND (files_done OR (cardinality(vantages) > 0 AND vantages <@ not_from))`); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, 'forgot')`, WorkChannel)
		return err
	})
	return n, e.wrap("forget gone vantage points", err)
}

// validFor is how long after its last renewal a lease is worked on:
// two thirds of it. The last third is the margin within which a paused or
// cut-off process stops before another may take the work over.
func validFor(lease time.Duration) time.Duration { return lease * 2 / 3 }
