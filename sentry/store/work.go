package store

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

// Instance roles: a daemon (`sentry run`) works every run; a command
// (`sentry prime`, `sentry sweep`) works only the run it started.
const (
	RoleDaemon  = "daemon"
	RoleCommand = "command"
)

// WorkChannel is the PostgreSQL NOTIFY channel on which new work and
// finished work are announced, so that idle instances need not wait for
// their next poll.
const WorkChannel = "sentry_work"

// ErrSweepRunning is returned by CreateRun for a scheduled sweep while
// another sweep on the database is still running.
var ErrSweepRunning = errors.New("another sweep is still running")

// Instance is one sentry process working on the database.
type Instance struct {
	ID      string
	Vantage string
	Role    string
}

// RegisterInstance records an instance as alive.
func (s *Store) RegisterInstance(ctx context.Context, in Instance) error {
	host, _ := os.Hostname()
	_, err := s.pool.Exec(ctx, `INSERT INTO sentry_instances (id, vantage, role, host, pid)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET last_seen = now(), stopped_at = NULL`,
		in.ID, in.Vantage, in.Role, host, os.Getpid())
	return s.wrap("register instance", err)
}

// Heartbeat records the instance as alive and renews for lease the
// leases it holds on work rows and on judging runs. It returns the work
// rows the instance still holds: a row missing from the answer was taken
// over (the instance was silent for longer than a lease) and must be
// dropped.
func (s *Store) Heartbeat(ctx context.Context, id string, lease time.Duration) ([]WorkKey, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, s.wrap("heartbeat", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE sentry_instances SET last_seen = now(), stopped_at = NULL WHERE id = $1`, id); err != nil {
		return nil, s.wrap("heartbeat", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE sentry_runs SET judge_until = now() + $2::interval
		WHERE judge_by = $1 AND outcome = 'running'`, id, lease); err != nil {
		return nil, s.wrap("heartbeat", err)
	}
	rows, err := tx.Query(ctx, `UPDATE sentry_work SET lease_until = now() + $2::interval
		WHERE claimed_by = $1 AND NOT done RETURNING run_id, mirror_id`, id, lease)
	if err != nil {
		return nil, s.wrap("heartbeat", err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowToStructByPos[WorkKey])
	if err != nil {
		return nil, s.wrap("heartbeat", err)
	}
	return held, s.wrap("heartbeat", tx.Commit(ctx))
}

// StopInstance records that an instance stopped and gives back the work
// rows it holds, so that others take them at once instead of after the
// lease.
func (s *Store) StopInstance(ctx context.Context, id string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.wrap("stop instance", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE sentry_work SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = $1 AND NOT done`, id); err != nil {
		return s.wrap("stop instance", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE sentry_runs SET judge_by = NULL, judge_until = NULL WHERE judge_by = $1`, id); err != nil {
		return s.wrap("stop instance", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE sentry_instances SET stopped_at = now() WHERE id = $1`, id); err != nil {
		return s.wrap("stop instance", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, 'released')`, WorkChannel); err != nil {
		return s.wrap("stop instance", err)
	}
	return s.wrap("stop instance", tx.Commit(ctx))
}

// VantagesSeen returns the vantage points that took part in sweeps started
// within the last period, or belong to daemons seen within it: the
// electorate of the default quorum. A `sentry prime` run from an
// operator's machine does not join it; a daemon that died half an hour
// ago still counts, so that losing one does not lower the bar at once.
func (s *Store) VantagesSeen(ctx context.Context, period time.Duration) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT v FROM sentry_runs r JOIN sentry_work w ON w.run_id = r.id, unnest(w.vantages) v
		WHERE r.kind IN ('sweep', 'deep_sweep') AND r.started_at > now() - $1::interval
		UNION
		SELECT vantage FROM sentry_instances WHERE role = 'daemon' AND last_seen > now() - $1::interval
		ORDER BY 1`, period)
	if err != nil {
		return nil, s.wrap("list vantage points", err)
	}
	v, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return v, s.wrap("list vantage points", err)
}

// liveVantagesSQL lists the vantage points that can work run $1: those of
// daemons, and of the run's own creator, seen within lease $2.
const liveVantagesSQL = `SELECT DISTINCT i.vantage FROM sentry_instances i, sentry_runs r
	WHERE r.id = $1 AND i.stopped_at IS NULL AND i.last_seen > now() - $2::interval
	  AND (i.role = 'daemon' OR i.id = r.instance)`

// NewRun describes a run to create with its work.
type NewRun struct {
	Kind      string
	ReleaseID int64
	// Slot, when set, is a scheduled sweep's slot: ErrSlotTaken when
	// another instance created it, ErrSweepRunning when a sweep is still
	// running.
	Slot     time.Time
	Vantage  string
	Instance string
	// Params is what workers need to do their part, as JSON.
	Params any
	// Mirrors get one work row each, in this order. Reach says whether
	// every working vantage point is to check each mirror's reachability
	// (sweeps); primes check from one place.
	Mirrors []int
	Reach   bool
	// Lease is how recently an instance must have been seen to count as
	// working, and the lease on the rows the creator claims.
	Lease time.Duration
	// Claim is how many rows the creator (Instance, at Vantage) claims
	// in the same transaction, so that it starts at once and keeps
	// working through a database outage that begins right after.
	Claim int
}

// CreateRun records a run and its work rows in one transaction, claims
// the creator's first rows (nr.Claim) and announces the rest on
// WorkChannel. With existing set, the run exists already (the release hook
// answered with its id) and only gets its work.
func (s *Store) CreateRun(ctx context.Context, nr NewRun, existing *Run) (Run, []Claim, error) {
	r, claims, err := s.createRun(ctx, nr, existing)
	return r, claims, s.wrap("start run", err)
}

func (s *Store) createRun(ctx context.Context, nr NewRun, existing *Run) (Run, []Claim, error) {
	params, err := json.Marshal(nr.Params)
	if err != nil {
		return Run{}, nil, fmt.Errorf("encode run parameters: %w", err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Run{}, nil, err
	}
	defer tx.Rollback(ctx)
	host, _ := os.Hostname()
	r := Run{Kind: nr.Kind}
	switch {
	case existing != nil:
		r = *existing
		_, err = tx.Exec(ctx, `UPDATE sentry_runs SET instance = $2, params = $3, release_id = nullif($4, 0) WHERE id = $1`,
			r.ID, nr.Instance, params, nr.ReleaseID)
	case nr.Slot.IsZero():
		err = tx.QueryRow(ctx, `INSERT INTO sentry_runs (kind, release_id, vantage, host, pid, instance, params)
			VALUES ($1, nullif($2, 0), $3, $4, $5, $6, $7) RETURNING id, started_at`,
			nr.Kind, nr.ReleaseID, nr.Vantage, host, os.Getpid(), nr.Instance, params).Scan(&r.ID, &r.StartedAt)
	default:
		// One scheduled sweep at a time on the database: the lock makes
		// the check and the insert atomic across instances.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7365), 0`); err != nil {
			return Run{}, nil, err
		}
		// A slot created already (running or ended) is taken; only then
		// does another running sweep hold this one back.
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sentry_runs WHERE kind = $1 AND slot = $2)`,
			nr.Kind, nr.Slot).Scan(&taken); err != nil {
			return Run{}, nil, err
		}
		if taken {
			return Run{}, nil, fmt.Errorf("%w: %s at %s", ErrSlotTaken, nr.Kind, nr.Slot.UTC().Format(time.RFC3339))
		}
		var busy int64
		err = tx.QueryRow(ctx, `SELECT id FROM sentry_runs WHERE kind IN ('sweep', 'deep_sweep')
			AND outcome = 'running' AND slot IS NOT NULL ORDER BY id LIMIT 1`).Scan(&busy)
		if err == nil {
			return Run{}, nil, fmt.Errorf("%w (run %d)", ErrSweepRunning, busy)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Run{}, nil, err
		}
		err = tx.QueryRow(ctx, `INSERT INTO sentry_runs (kind, vantage, host, pid, slot, instance, params)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kind, slot) WHERE slot IS NOT NULL DO NOTHING
			RETURNING id, started_at`, nr.Kind, nr.Vantage, host, os.Getpid(), nr.Slot, nr.Instance, params).Scan(&r.ID, &r.StartedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return Run{}, nil, fmt.Errorf("%w: %s at %s", ErrSlotTaken, nr.Kind, nr.Slot.UTC().Format(time.RFC3339))
		}
	}
	if err != nil {
		return Run{}, nil, err
	}
	var vantages []string
	if nr.Reach {
		rows, err := tx.Query(ctx, liveVantagesSQL, r.ID, nr.Lease)
		if err != nil {
			return Run{}, nil, err
		}
		if vantages, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return Run{}, nil, err
		}
		if !slices.Contains(vantages, nr.Vantage) {
			vantages = append(vantages, nr.Vantage)
		}
	}
	if vantages == nil {
		vantages = []string{}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO sentry_work (run_id, mirror_id, seq, vantages, needs)
		SELECT $1, m, s, $3, $3 FROM unnest($2::int[]) WITH ORDINALITY AS u(m, s)`,
		r.ID, nr.Mirrors, vantages); err != nil {
		return Run{}, nil, err
	}
	var claims []Claim
	if nr.Claim > 0 {
		if claims, err = claimWork(ctx, tx, nr.Instance, nr.Vantage, r.ID, nr.Claim, nr.Lease); err != nil {
			return Run{}, nil, err
		}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, WorkChannel, fmt.Sprint(r.ID)); err != nil {
		return Run{}, nil, err
	}
	return r, claims, tx.Commit(ctx)
}

// WorkKey names a work row.
type WorkKey struct {
	RunID    int64
	MirrorID int
}

// Claim is a work row an instance now holds.
type Claim struct {
	WorkKey
	Kind      string
	StartedAt time.Time // the run's
	Params    []byte
	// Reach: this instance's vantage point has still to check the
	// mirror's reachability. Files: the mirror's files are still to be
	// checked (or primed).
	Reach, Files bool
	// Claims counts how often the row was claimed, this time included:
	// more than one means an earlier holder gave it back or died.
	Claims int
}

// ClaimWork claims up to n work rows of running runs (of run runID only,
// when not 0) that instance id of vantage point vantage can do, under a
// lease, skipping rows other instances hold or are claiming. Rows whose
// files are still to be done come first.
func (s *Store) ClaimWork(ctx context.Context, id, vantage string, runID int64, n int, lease time.Duration) ([]Claim, error) {
	claims, err := claimWork(ctx, s.pool, id, vantage, runID, n, lease)
	return claims, s.wrap("claim work", err)
}

// querier is a pool, a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func claimWork(ctx context.Context, q querier, id, vantage string, runID int64, n int, lease time.Duration) ([]Claim, error) {
	rows, err := q.Query(ctx, `
		UPDATE sentry_work w SET claimed_by = $1, lease_until = now() + $5::interval, claims = w.claims + 1
		FROM sentry_runs r
		WHERE r.id = w.run_id AND (w.run_id, w.mirror_id) IN (
			SELECT w2.run_id, w2.mirror_id FROM sentry_work w2 JOIN sentry_runs r2 ON r2.id = w2.run_id
			WHERE NOT w2.done AND r2.outcome = 'running' AND ($3 = 0 OR w2.run_id = $3)
			  AND (w2.lease_until IS NULL OR w2.lease_until < now())
			  AND ($2 = ANY (w2.needs) OR (NOT w2.files_done AND NOT $2 = ANY (w2.not_from)))
			ORDER BY w2.files_done, w2.run_id, w2.seq
			LIMIT $4
			FOR UPDATE OF w2 SKIP LOCKED)
		RETURNING w.run_id, w.mirror_id, r.kind, r.started_at, r.params, $2 = ANY (w.needs), NOT w.files_done, w.claims`,
		id, vantage, runID, n, lease)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Claim, error) {
		var c Claim
		err := r.Scan(&c.RunID, &c.MirrorID, &c.Kind, &c.StartedAt, &c.Params, &c.Reach, &c.Files, &c.Claims)
		return c, err
	})
}

// WorkDone is what an instance did with a claimed row.
type WorkDone struct {
	WorkKey
	Instance, Vantage string
	// Verdict, when set, is this vantage point's reachability verdict.
	Verdict any
	// Unreachable: the mirror could not be reached from this vantage
	// point, so its files are left to another.
	Unreachable bool
	// Result, when set, is the outcome of the mirror's files, which are
	// then done.
	Result any
}

// CompleteWork records what an instance did with a row it holds and gives
// the row back, done or for another vantage point. It returns false when
// the instance no longer held the row (taken over after its lease ran
// out): then nothing is written.
func (s *Store) CompleteWork(ctx context.Context, w WorkDone) (bool, error) {
	verdict, err := json.Marshal(w.Verdict)
	if err != nil {
		return false, fmt.Errorf("encode verdict: %w", err)
	}
	var result []byte
	if w.Result != nil {
		if result, err = json.Marshal(w.Result); err != nil {
			return false, fmt.Errorf("encode result: %w", err)
		}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, s.wrap("complete work", err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `UPDATE sentry_work SET
			needs = array_remove(needs, $4),
			verdicts = CASE WHEN $5::jsonb = 'null' THEN verdicts ELSE verdicts || jsonb_build_object($4::text, $5::jsonb) END,
			not_from = CASE WHEN $6 THEN array_append(array_remove(not_from, $4), $4) ELSE not_from END,
			files_done = files_done OR $7::jsonb IS NOT NULL,
			result = coalesce($7::jsonb, result),
			done_by = CASE WHEN $7::jsonb IS NOT NULL THEN $3 ELSE done_by END,
			claimed_by = NULL, lease_until = NULL
		WHERE run_id = $1 AND mirror_id = $2 AND claimed_by = $3 AND NOT done`,
		w.RunID, w.MirrorID, w.Instance, w.Vantage, verdict, w.Unreachable, result)
	if err != nil {
		return false, s.wrap("complete work", err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	if err := settleWork(ctx, tx, w.RunID, w.MirrorID); err != nil {
		return false, s.wrap("complete work", err)
	}
	// Work left on the row is for another vantage point: say so.
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2::bigint::text) FROM sentry_work
		WHERE run_id = $2::bigint AND mirror_id = $3 AND NOT done`, WorkChannel, w.RunID, w.MirrorID); err != nil {
		return false, s.wrap("complete work", err)
	}
	return true, s.wrap("complete work", tx.Commit(ctx))
}

// settleWork marks done the rows of a run (one mirror's, or every one with
// mirrorID 0) with nothing left to do: every vantage point checked
// reachability, and the files are done or no vantage point can reach the
// mirror. It announces the run on WorkChannel when its last row is done.
func settleWork(ctx context.Context, tx pgx.Tx, runID int64, mirrorID int) error {
	if _, err := tx.Exec(ctx, `UPDATE sentry_work SET done = true
		WHERE run_id = $1 AND ($2 = 0 OR mirror_id = $2) AND NOT done AND claimed_by IS NULL
		  AND cardinality(needs) = 0 AND (files_done OR (cardinality(vantages) > 0 AND vantages <@ not_from))`, runID, mirrorID); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2::bigint::text) WHERE NOT EXISTS (
		SELECT 1 FROM sentry_work WHERE run_id = $2::bigint AND NOT done)`, WorkChannel, runID)
	return err
}

// GiveBack returns a held row undone (the instance is stopping, or could
// not do it), for another instance to claim at once.
func (s *Store) GiveBack(ctx context.Context, k WorkKey, id string) error {
	_, err := s.pool.Exec(ctx, `WITH back AS (UPDATE sentry_work SET claimed_by = NULL, lease_until = NULL
		WHERE run_id = $1 AND mirror_id = $2 AND claimed_by = $3 RETURNING run_id)
		SELECT pg_notify($4, run_id::text) FROM back`, k.RunID, k.MirrorID, id, WorkChannel)
	return s.wrap("give back work", err)
}

// ForgetGoneVantages drops from the open rows of running runs the vantage
// points no working instance has anymore (every instance of a region
// stopped or died mid-run), so that the run can end without them. It
// returns how many rows changed.
func (s *Store) ForgetGoneVantages(ctx context.Context, lease time.Duration) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, s.wrap("forget gone vantage points", err)
	}
	defer tx.Rollback(ctx)
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
		  AND cardinality(w.vantages) > 0 AND NOT (w.vantages <@ live.v)`, lease)
	if err != nil {
		return 0, s.wrap("forget gone vantage points", err)
	}
	if tag.RowsAffected() > 0 {
		if _, err := tx.Exec(ctx, `UPDATE sentry_work SET done = true, claimed_by = NULL, lease_until = NULL
			WHERE NOT done AND (claimed_by IS NULL OR lease_until < now()) AND cardinality(needs) = 0
			  AND (files_done OR (cardinality(vantages) > 0 AND vantages <@ not_from))`); err != nil {
			return 0, s.wrap("forget gone vantage points", err)
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, 'forgot')`, WorkChannel); err != nil {
			return 0, s.wrap("forget gone vantage points", err)
		}
	}
	return int(tag.RowsAffected()), s.wrap("forget gone vantage points", tx.Commit(ctx))
}

// JudgeClaim is a run whose work is all done, now leased to one instance
// for its last step.
type JudgeClaim struct {
	Run
	Params []byte
}

// ClaimJudging leases to instance id the runs (run runID only, when not
// 0) whose work rows are all done and that nobody is judging. A daemon
// judges the runs of daemons, and of commands that died; a command judges
// its own run.
func (s *Store) ClaimJudging(ctx context.Context, id string, runID int64, lease time.Duration) ([]JudgeClaim, error) {
	rows, err := s.pool.Query(ctx, `
		UPDATE sentry_runs r SET judge_by = $1, judge_until = now() + $3::interval
		WHERE r.outcome = 'running' AND r.instance IS NOT NULL AND ($2 = 0 OR r.id = $2)
		  AND (r.judge_until IS NULL OR r.judge_until < now())
		  AND NOT EXISTS (SELECT 1 FROM sentry_work w WHERE w.run_id = r.id AND NOT w.done)
		  AND (r.instance = $1 OR EXISTS (SELECT 1 FROM sentry_instances c WHERE c.id = r.instance
		       AND (c.role = 'daemon' OR c.stopped_at IS NOT NULL OR c.last_seen < now() - $3::interval)))
		RETURNING r.id, r.kind, r.started_at, r.params`, id, runID, lease)
	if err != nil {
		return nil, s.wrap("claim judging", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JudgeClaim, error) {
		var j JudgeClaim
		err := r.Scan(&j.ID, &j.Kind, &j.StartedAt, &j.Params)
		return j, err
	})
	return out, s.wrap("claim judging", err)
}

// WorkRow is a work row as the judge reads it.
type WorkRow struct {
	MirrorID int
	Vantages []string
	NotFrom  []string
	DoneBy   string
	Claims   int
	Verdicts []byte // JSON object: vantage point → verdict
	Result   []byte // JSON, nil when the files were not done
}

// WorkRows calls fn with every work row of a run, in creation order.
func (s *Store) WorkRows(ctx context.Context, runID int64, fn func(WorkRow) error) error {
	rows, err := s.pool.Query(ctx, `SELECT mirror_id, vantages, not_from, coalesce(done_by, ''), claims, verdicts, result
		FROM sentry_work WHERE run_id = $1 ORDER BY seq`, runID)
	if err != nil {
		return s.wrap("read work", err)
	}
	defer rows.Close()
	for rows.Next() {
		var w WorkRow
		if err := rows.Scan(&w.MirrorID, &w.Vantages, &w.NotFrom, &w.DoneBy, &w.Claims, &w.Verdicts, &w.Result); err != nil {
			return s.wrap("read work", err)
		}
		if err := fn(w); err != nil {
			return err
		}
	}
	return s.wrap("read work", rows.Err())
}

// SetWorkResults replaces the results of a run's rows (the judge's final
// word on each mirror), in one transaction.
func (s *Store) SetWorkResults(ctx context.Context, runID int64, results map[int]any) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.wrap("write work results", err)
	}
	defer tx.Rollback(ctx)
	batch := &pgx.Batch{}
	for id, r := range results {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode result: %w", err)
		}
		batch.Queue(`UPDATE sentry_work SET result = $3 WHERE run_id = $1 AND mirror_id = $2`, runID, id, b)
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return s.wrap("write work results", err)
	}
	return s.wrap("write work results", tx.Commit(ctx))
}

// RunStatus is a run's outcome as recorded.
type RunStatus struct {
	Outcome  string
	Reason   string
	Finished bool
	Open     int // work rows not done
	Total    int
}

// RunStatus reads a run's outcome and how much of its work is left.
func (s *Store) RunStatus(ctx context.Context, runID int64) (RunStatus, error) {
	var st RunStatus
	err := s.pool.QueryRow(ctx, `SELECT outcome, reason, finished_at IS NOT NULL,
		(SELECT count(*) FILTER (WHERE NOT done) FROM sentry_work WHERE run_id = r.id),
		(SELECT count(*) FROM sentry_work WHERE run_id = r.id)
		FROM sentry_runs r WHERE id = $1`, runID).Scan(&st.Outcome, &st.Reason, &st.Finished, &st.Open, &st.Total)
	return st, s.wrap(fmt.Sprintf("read run %d", runID), err)
}

// EndRun records a run's end once: outcome and reason, and its open work
// rows closed. It returns false when the run had ended already.
func (s *Store) EndRun(ctx context.Context, runID int64, outcome, reason string) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, s.wrap(fmt.Sprintf("finish run %d", runID), err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `UPDATE sentry_runs SET finished_at = now(), outcome = $2, reason = $3,
		judge_by = NULL, judge_until = NULL WHERE id = $1 AND outcome = 'running'`, runID, outcome, reason)
	if err != nil {
		return false, s.wrap(fmt.Sprintf("finish run %d", runID), err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE sentry_work SET done = true, claimed_by = NULL, lease_until = NULL
		WHERE run_id = $1 AND NOT done`, runID); err != nil {
		return false, s.wrap(fmt.Sprintf("finish run %d", runID), err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2::bigint::text)`, WorkChannel, runID); err != nil {
		return false, s.wrap(fmt.Sprintf("finish run %d", runID), err)
	}
	return true, s.wrap(fmt.Sprintf("finish run %d", runID), tx.Commit(ctx))
}

// RunsWithoutWorkers ends, as interrupted, the running shared runs that no
// working instance can continue (their creator and every daemon are gone).
// It returns how many it ended.
func (s *Store) RunsWithoutWorkers(ctx context.Context, lease time.Duration) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `
		WITH gone AS (
			UPDATE sentry_runs r SET outcome = 'interrupted', finished_at = now(),
				reason = 'interrupted: every sentry working on it stopped; checks stored, work left undone'
			WHERE r.outcome = 'running' AND r.instance IS NOT NULL
			  AND NOT EXISTS (SELECT 1 FROM sentry_instances i WHERE i.stopped_at IS NULL
			      AND i.last_seen > now() - $1::interval AND (i.role = 'daemon' OR i.id = r.instance))
			RETURNING r.id)
		, closed AS (UPDATE sentry_work w SET done = true, claimed_by = NULL, lease_until = NULL
		FROM gone WHERE w.run_id = gone.id AND NOT w.done)
		SELECT count(*) FROM gone`, lease).Scan(&n)
	return n, s.wrap("close abandoned runs", err)
}

// Listen holds a connection listening on WorkChannel and calls wake for
// every notification until ctx ends. It returns the connection's error.
func (s *Store) Listen(ctx context.Context, wake func()) error {
	// A connection of its own, outside the pool: it is held for as long
	// as the process runs and must not take a pooled connection away.
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return s.wrap("listen", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN `+WorkChannel); err != nil {
		return s.wrap("listen", err)
	}
	wake() // anything announced before LISTEN took effect
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return s.wrap("listen", err)
		}
		wake()
	}
}
