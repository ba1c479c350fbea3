package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/sentry/observe"
)

// Judging: a run's last step, once every row is done.
//
// One process judges a run at a time: the judging is leased like a row
// (sentry_runs.judge_by, judge_until), renewed by the heartbeat, with a
// token of its own (judge_token) that fences the judge's marks and the
// run's end. A daemon judges the runs of daemons, and of commands that
// died; a command judges the run it started.
//
// A judge that fails (a database error, its connection terminated) gives
// the judging back with a backoff (judge_after, doubling up to a lease),
// and whichever process looks next judges the run again; a job's judge is
// written so that being redone neither counts a mirror twice nor
// announces anything twice. A run whose rows are all done but that could
// not be judged within Options.JudgeFor ends as failed, naming the last
// error: no run stays running for long after its last row, and the next
// scheduled sweep is never held back by one.

// judgeClaim is a run leased to this process for judging.
type judgeClaim struct {
	run   Run
	fence judgeFence
}

// claimJudging ends the runs that waited too long for a judgement, then
// leases to w the runs (of w's run only, for a command; of the kinds this
// process registers) whose rows are all done and that nobody judges or
// will judge soon.
func (e *Engine) claimJudging(ctx context.Context, w *Worker) ([]judgeClaim, error) {
	var out []judgeClaim
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			WITH overdue AS (
				UPDATE sentry_runs r SET outcome = 'failed', finished_at = now(), judge_by = NULL, judge_until = NULL,
					reason = format('could not be judged within %s after its last row (%s attempts): %s',
					                $1::interval, r.judge_attempts, coalesce(nullif(r.judge_error, ''), 'no error recorded'))
				WHERE r.outcome = 'running' AND r.ready AND (r.judge_until IS NULL OR r.judge_until < now())
				  AND NOT EXISTS (SELECT 1 FROM sentry_work w WHERE w.run_id = r.id AND NOT w.done)
				  AND coalesce((SELECT max(done_at) FROM sentry_work w WHERE w.run_id = r.id), r.started_at) < now() - $1::interval
				RETURNING r.id)
			SELECT pg_notify($2, id::text) FROM overdue`, e.opts.JudgeFor, WorkChannel); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			UPDATE sentry_runs r SET judge_by = $1, judge_until = now() + $3::interval, judge_token = r.judge_token + 1
			WHERE r.outcome = 'running' AND r.ready AND ($2 = 0 OR r.id = $2) AND r.kind = ANY ($4)
			  AND (r.judge_until IS NULL OR r.judge_until < now())
			  AND (r.judge_after IS NULL OR r.judge_after <= now())
			  AND NOT EXISTS (SELECT 1 FROM sentry_work w WHERE w.run_id = r.id AND NOT w.done)
			  AND (r.instance = $1 OR EXISTS (SELECT 1 FROM sentry_instances c WHERE c.id = r.instance
			       AND (c.role = 'daemon' OR c.stopped_at IS NOT NULL OR c.last_seen < now() - $3::interval)))
			RETURNING r.id, r.kind, r.started_at, r.params, r.judge_token`, w.id, w.onlyRun(), e.opts.Lease, e.known)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (judgeClaim, error) {
			var j judgeClaim
			err := r.Scan(&j.run.ID, &j.run.Kind, &j.run.StartedAt, &j.run.Params, &j.fence.token)
			j.fence.run = j.run.ID
			return j, err
		})
		return err
	})
	return out, e.wrap("claim judging", err)
}

// judge does a run's last step under the judging's lease: the job's
// judgement, then the run's end with the judge's final word on each
// mirror, in one transaction fenced by the judging's token. The end is
// announced (Observer.RunFinished, Ending.After) only when this judgement
// recorded it. On failure the judging is given back for a retry.
func (e *Engine) judge(ctx context.Context, w *Worker, jc judgeClaim) {
	log := w.log.With("run", jc.run.ID, "kind", jc.run.Kind)
	err := func() error {
		task, err := w.prepare(ctx, jc.run, log)
		if err != nil {
			return err
		}
		rows, err := e.rows(ctx, jc.run.ID)
		if err != nil {
			return err
		}
		j := &Judgement{Run: jc.run, Rows: rows, fence: jc.fence, engine: e}
		end, err := task.Judge(ctx, j)
		if err != nil {
			return err
		}
		ended, err := e.end(ctx, jc.run.ID, end.Outcome, end.Reason, &jc.fence, end.Files)
		if err != nil {
			return err
		}
		if !ended {
			log.Info("the run was ended by another sentry while this one judged it")
			return nil
		}
		e.obs.RunFinished(observe.RunEvent{RunID: jc.run.ID, Kind: jc.run.Kind, Outcome: end.Outcome,
			Reason: end.Reason, Started: jc.run.StartedAt, Finished: time.Now()})
		if end.After != nil {
			end.After()
		}
		log.Info("run judged", "outcome", end.Outcome, "reason", end.Reason)
		return nil
	}()
	if err == nil {
		return
	}
	log.Error("could not judge the run; it is judged again shortly", "err", err)
	bg, cancel := detached(ctx, e.opts.Lease)
	defer cancel()
	if rerr := e.releaseJudging(bg, jc.fence, w.id, err); rerr != nil {
		log.Warn("could not give the judging back; another sentry judges the run once its lease runs out", "err", rerr)
	}
}

// releaseJudging gives a judging back after a failure, to be retried after
// a backoff that doubles with every attempt up to a lease.
func (e *Engine) releaseJudging(ctx context.Context, f judgeFence, id string, cause error) error {
	_, err := e.pool.Exec(ctx, `
		UPDATE sentry_runs SET judge_by = NULL, judge_until = NULL, judge_attempts = judge_attempts + 1,
			judge_error = left($4, 500),
			judge_after = now() + least($5::interval * power(2, least(judge_attempts, 10)), $6::interval)
		WHERE id = $1 AND judge_token = $2 AND judge_by = $3 AND outcome = 'running'`,
		f.run, f.token, id, cause.Error(), e.opts.Poll, e.opts.Lease)
	return e.wrap(fmt.Sprintf("give back the judging of run %d", f.run), err)
}
