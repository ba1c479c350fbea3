package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// WorkChannel is the PostgreSQL NOTIFY channel on which new, given back,
// finished and ended work is announced, so that idle sentries need not
// wait for their next poll.
const WorkChannel = "sentry_work"

var (
	// ErrSlotTaken: a scheduled run's slot (its scheduled time) was
	// started by another sentry; this one helps with it.
	ErrSlotTaken = errors.New("slot already claimed")
	// ErrGroupBusy is wrapped by a GroupBusyError.
	ErrGroupBusy = errors.New("a scheduled run of its group is still running")
	// ErrRunning is wrapped by a RunningError.
	ErrRunning = errors.New("already running")
)

// GroupBusyError: a scheduled run of the request's group (Kind.Group) is
// still running, so the request's scheduled run does not start
// (Request.Queue waits for it). It wraps ErrGroupBusy, and the kind's Busy
// error when it has one.
type GroupBusyError struct {
	Group string
	RunID int64 // the running run
	// Busy is the requesting kind's Kind.Busy, nil for none.
	Busy error
}

func (e GroupBusyError) Error() string {
	if e.Busy != nil {
		return fmt.Sprintf("%v (run %d)", e.Busy, e.RunID)
	}
	return fmt.Sprintf("a scheduled run of group %q is still running (run %d)", e.Group, e.RunID)
}

func (e GroupBusyError) Unwrap() []error {
	if e.Busy != nil {
		return []error{ErrGroupBusy, e.Busy}
	}
	return []error{ErrGroupBusy}
}

// RunningError: a run with the request's key is running (one prime of a
// release at a time), and the request did not ask to join it.
type RunningError struct {
	RunID int64
	Key   string
}

func (e RunningError) Error() string {
	return fmt.Sprintf("%s is %s as run %d", e.Key, ErrRunning, e.RunID)
}

func (e RunningError) Unwrap() error { return ErrRunning }

// lockScheduled makes the check for a running scheduled run of a group
// and the insert of the next one atomic across sentries.
const lockScheduled = 7365

// begin records a run, not yet planned (ready false), created by instance,
// with its kind's properties. With a key, a running run of that key is
// returned instead, with joined true. With a slot, ErrSlotTaken when
// another sentry started that slot, a GroupBusyError while a scheduled run
// of the kind's group runs.
func (e *Engine) begin(ctx context.Context, req Request, instance string) (Run, bool, error) {
	kind, err := e.kind(req.Kind)
	if err != nil {
		return Run{}, false, err
	}
	params, err := json.Marshal(req.Params)
	if err != nil {
		return Run{}, false, fmt.Errorf("encode run parameters: %w", err)
	}
	host, _ := os.Hostname()
	run := Run{Kind: req.Kind, Params: params}
	var key, slot, group any
	if req.Key != "" {
		key = req.Key
	}
	if kind.Group != "" {
		group = kind.Group
	}
	if !req.Slot.IsZero() {
		slot = req.Slot
	}
	joined := false
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if slot != nil {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockScheduled); err != nil {
				return err
			}
			var taken bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sentry_runs WHERE kind = $1 AND slot = $2)`,
				req.Kind, slot).Scan(&taken); err != nil {
				return err
			}
			if taken {
				return fmt.Errorf("%w: %s at %s", ErrSlotTaken, req.Kind, req.Slot.UTC().Format(time.RFC3339))
			}
			if group != nil {
				var busy int64
				err := tx.QueryRow(ctx, `SELECT id FROM sentry_runs WHERE exclusive_group = $1
					AND outcome = 'running' AND slot IS NOT NULL ORDER BY id LIMIT 1`, group).Scan(&busy)
				if err == nil {
					return GroupBusyError{Group: kind.Group, RunID: busy, Busy: kind.Busy}
				}
				if !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
			}
		}
		err := tx.QueryRow(ctx, `INSERT INTO sentry_runs (kind, vantage, host, pid, instance, params, key, slot, ready,
				priority, yields, exclusive_group)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false, $9, $10, $11)
			ON CONFLICT (key) WHERE outcome = 'running' AND key IS NOT NULL DO NOTHING
			RETURNING id, started_at`,
			req.Kind, e.opts.Vantage, host, os.Getpid(), instance, params, key, slot,
			kind.Priority, kind.Yield, group).Scan(&run.ID, &run.StartedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			// The key's run is running: this is its run too.
			joined = true
			return tx.QueryRow(ctx, `SELECT id, kind, started_at, params FROM sentry_runs
				WHERE key = $1 AND outcome = 'running'`, key).Scan(&run.ID, &run.Kind, &run.StartedAt, &run.Params)
		}
		return err
	})
	if errors.Is(err, ErrSlotTaken) || errors.Is(err, ErrGroupBusy) {
		return Run{}, false, err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		// The running run ended between the insert and the read: the
		// next try starts a run of its own.
		return e.begin(ctx, req, instance)
	}
	if err != nil {
		return Run{}, false, e.wrap("start run", err)
	}
	return run, joined, nil
}

// plan records a run's work: its parameters, one row per mirror, the
// vantage points that are to check each mirror's reachability, and the
// creator's first claims (up to free), in one transaction; then the run is
// ready to be worked and judged.
func (e *Engine) plan(ctx context.Context, w *Worker, run Run, p Plan) (Run, []*Row, error) {
	params, err := json.Marshal(p.Params)
	if err != nil {
		return run, nil, fmt.Errorf("encode run parameters: %w", err)
	}
	run.Params = params
	rows, err := w.claiming(func(free int) ([]*Row, error) {
		tx, err := e.pool.Begin(ctx)
		if err != nil {
			return nil, err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `UPDATE sentry_runs SET params = $2, release_id = nullif($3, 0), ready = true WHERE id = $1`,
			run.ID, params, p.ReleaseID); err != nil {
			return nil, err
		}
		vantages := []string{}
		if p.Reach {
			rows, err := tx.Query(ctx, liveVantagesSQL, run.ID, e.opts.Lease)
			if err != nil {
				return nil, err
			}
			if vantages, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return nil, err
			}
			if !slices.Contains(vantages, e.opts.Vantage) {
				vantages = append(vantages, e.opts.Vantage)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sentry_work (run_id, mirror_id, seq, vantages, needs)
			SELECT $1, m, s, $3, $3 FROM unnest($2::int[]) WITH ORDINALITY AS u(m, s)`,
			run.ID, p.Mirrors, vantages); err != nil {
			return nil, err
		}
		var claimed []*Row
		if free > 0 {
			if claimed, err = e.claim(ctx, tx, w, run.ID, free); err != nil {
				return nil, err
			}
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, WorkChannel, fmt.Sprint(run.ID)); err != nil {
			return nil, err
		}
		if err := tx.Commit(ctx); err != nil {
			return nil, err
		}
		return claimed, nil
	})
	if err != nil {
		return run, nil, e.wrap(fmt.Sprintf("plan run %d", run.ID), err)
	}
	return run, rows, nil
}

// liveVantagesSQL lists the vantage points that can work run $1: those of
// daemons, and of the run's own creator, seen within lease $2.
const liveVantagesSQL = `SELECT DISTINCT i.vantage FROM sentry_instances i, sentry_runs r
	WHERE r.id = $1 AND i.stopped_at IS NULL AND i.last_seen > now() - $2::interval
	  AND (i.role = 'daemon' OR i.id = r.instance)`

// RunStatus is a run's outcome as recorded and how much of its work is
// left.
type RunStatus struct {
	Outcome  string
	Reason   string
	Finished bool
	Ready    bool
	Open     int // work rows not done
	Total    int
}

func (e *Engine) status(ctx context.Context, runID int64) (RunStatus, error) {
	var st RunStatus
	err := e.pool.QueryRow(ctx, `SELECT outcome, reason, finished_at IS NOT NULL, ready,
		(SELECT count(*) FILTER (WHERE NOT done) FROM sentry_work WHERE run_id = r.id),
		(SELECT count(*) FROM sentry_work WHERE run_id = r.id)
		FROM sentry_runs r WHERE id = $1`, runID).Scan(&st.Outcome, &st.Reason, &st.Finished, &st.Ready, &st.Open, &st.Total)
	return st, e.wrap(fmt.Sprintf("read run %d", runID), err)
}

// end records a run's end once: outcome and reason, and its open rows
// closed. With a judge fence it ends the run only while the fence holds,
// and writes the judge's final word on each mirror (files) with it. It
// returns false when the run had ended already (or the fence was lost).
func (e *Engine) end(ctx context.Context, runID int64, outcome, reason string, judge *judgeFence, files map[int]any) (bool, error) {
	ended := false
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		token := -1
		if judge != nil {
			token = judge.token
		}
		tag, err := tx.Exec(ctx, `UPDATE sentry_runs SET finished_at = now(), outcome = $2, reason = $3,
			judge_by = NULL, judge_until = NULL
			WHERE id = $1 AND outcome = 'running' AND ($4 < 0 OR judge_token = $4)`, runID, outcome, reason, token)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		ended = true
		if len(files) > 0 {
			// The judge's final word on each mirror, kept on the run: one
			// write, not one per row.
			doc := make(map[string]any, len(files))
			for id, r := range files {
				doc[fmt.Sprint(id)] = r
			}
			b, err := json.Marshal(doc)
			if err != nil {
				return fmt.Errorf("encode results: %w", err)
			}
			if _, err := tx.Exec(ctx, `UPDATE sentry_runs SET results = $2 WHERE id = $1`, runID, b); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE sentry_work SET done = true, done_at = now(), claimed_by = NULL, lease_until = NULL
			WHERE run_id = $1 AND NOT done`, runID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2::bigint::text)`, WorkChannel, runID)
		return err
	})
	if err != nil {
		return false, e.wrap(fmt.Sprintf("end run %d", runID), err)
	}
	return ended, nil
}

// endRetrying is end (not as a judge), retried through a passing outage
// until ctx ends: a run must not stay running because of one.
func (e *Engine) endRetrying(ctx context.Context, runID int64, outcome, reason string) (bool, error) {
	var ended bool
	err := Retry(ctx, e.log.With("run", runID), "recording the end of the run", 0, func() (err error) {
		ended, err = e.end(ctx, runID, outcome, reason, nil, nil)
		return err
	})
	return ended, err
}

// rows reads every work row of a run, in creation order, each with its
// files as the run's judge last wrote them (or as the row's worker found
// them, when the judge said nothing of the mirror).
func (e *Engine) rows(ctx context.Context, runID int64) ([]WorkRow, error) {
	rows, err := e.pool.Query(ctx, `SELECT w.mirror_id, w.vantages, w.not_from, coalesce(w.done_by, ''), w.claims, w.verdicts,
			coalesce(r.results -> w.mirror_id::text, w.result)
		FROM sentry_work w JOIN sentry_runs r ON r.id = w.run_id WHERE w.run_id = $1 ORDER BY w.seq`, runID)
	if err != nil {
		return nil, e.wrap("read work", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (WorkRow, error) {
		var w WorkRow
		err := r.Scan(&w.MirrorID, &w.Vantages, &w.NotFrom, &w.DoneBy, &w.Claims, &w.Verdicts, &w.Files)
		return w, err
	})
	return out, e.wrap("read work", err)
}

// CloseAbandoned ends, as interrupted, the running runs that no working
// sentry can continue: their creator and every daemon are gone (and runs
// recorded before runs had creators). It returns how many it ended.
func (e *Engine) CloseAbandoned(ctx context.Context) (int, error) {
	var n int
	err := e.pool.QueryRow(ctx, `
		WITH gone AS (
			UPDATE sentry_runs r SET outcome = 'interrupted', finished_at = now(),
				reason = 'interrupted: every sentry working on it stopped; checks stored, work left undone'
			WHERE r.outcome = 'running'
			  AND NOT EXISTS (SELECT 1 FROM sentry_instances i WHERE i.stopped_at IS NULL
			      AND i.last_seen > now() - $1::interval AND (i.role = 'daemon' OR i.id = r.instance))
			RETURNING r.id)
		, closed AS (UPDATE sentry_work w SET done = true, done_at = now(), claimed_by = NULL, lease_until = NULL
			FROM gone WHERE w.run_id = gone.id AND NOT w.done)
		, told AS (SELECT pg_notify($2, id::text) FROM gone)
		SELECT count(*) FROM gone, (SELECT count(*) FROM told) t`, e.opts.Lease, WorkChannel).Scan(&n)
	return n, e.wrap("close abandoned runs", err)
}

// vantagesSeen: see Judgement.VantagesSeen. A run's work rows name
// vantage points (sentry_work.vantages) only when its plan has every
// vantage point check reachability (Plan.Reach).
func (e *Engine) vantagesSeen(ctx context.Context, period time.Duration) ([]string, error) {
	rows, err := e.pool.Query(ctx, `
		SELECT DISTINCT v FROM sentry_runs r JOIN sentry_work w ON w.run_id = r.id, unnest(w.vantages) v
		WHERE r.started_at > now() - $1::interval
		UNION
		SELECT vantage FROM sentry_instances WHERE role = 'daemon' AND last_seen > now() - $1::interval
		ORDER BY 1`, period)
	if err != nil {
		return nil, e.wrap("list vantage points", err)
	}
	v, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return v, e.wrap("list vantage points", err)
}
