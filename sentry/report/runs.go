package report

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Run is a prime or sweep as sentry_runs recorded it.
type Run struct {
	ID         int64      `json:"id"`
	Kind       string     `json:"kind"`
	Release    string     `json:"release,omitempty"`
	Outcome    string     `json:"outcome"`
	Reason     string     `json:"reason"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// Vantage and Host are where the run was started.
	Vantage string `json:"vantage"`
	Host    string `json:"host"`
	// Mirrors counts its work rows (one per mirror), Done those done.
	Mirrors int `json:"mirrors"`
	Done    int `json:"mirrors_done"`
}

// MaxRuns bounds the runs Runs returns.
const MaxRuns = 500

// Runs returns the newest limit runs (at most MaxRuns), newest first.
func (r *Reporter) Runs(ctx context.Context, limit int) ([]Run, error) {
	limit = min(max(limit, 1), MaxRuns)
	rows, err := r.pool.Query(ctx, `
		SELECT r.id, r.kind, coalesce(rel.name, r.params->>'release', ''), r.outcome, r.reason, r.started_at, r.finished_at,
		       r.vantage, r.host,
		       (SELECT count(*) FROM sentry_work w WHERE w.run_id = r.id),
		       (SELECT count(*) FROM sentry_work w WHERE w.run_id = r.id AND w.done)
		FROM sentry_runs r LEFT JOIN sentry_releases rel ON rel.id = r.release_id
		ORDER BY r.id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) {
		var x Run
		err := row.Scan(&x.ID, &x.Kind, &x.Release, &x.Outcome, &x.Reason, &x.StartedAt, &x.FinishedAt, &x.Vantage, &x.Host,
			&x.Mirrors, &x.Done)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return out, nil
}

// RunTotals is what the runs of every sentry on the database add up to,
// for /metrics: runs ended by kind and outcome, and when a run of each
// kind last ran through (completed or guarded).
type RunTotals struct {
	Ended         map[string]map[string]int64
	LastCompleted map[string]time.Time
}

// RunKinds and EndOutcomes are the words of RunTotals' keys.
var (
	RunKinds    = []string{"prime", "sweep", "deep_sweep"}
	EndOutcomes = []string{"completed", "guarded", "interrupted", "failed"}
)

// RunTotals counts the ended runs, whoever ran them.
func (r *Reporter) RunTotals(ctx context.Context) (*RunTotals, error) {
	rows, err := r.pool.Query(ctx, `
		SELECT kind, outcome, count(*),
		       max(finished_at) FILTER (WHERE outcome IN ('completed', 'guarded'))
		FROM sentry_runs WHERE outcome <> 'running' GROUP BY kind, outcome`)
	if err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	defer rows.Close()
	t := &RunTotals{Ended: map[string]map[string]int64{}, LastCompleted: map[string]time.Time{}}
	for _, k := range RunKinds {
		t.Ended[k] = map[string]int64{}
		for _, o := range EndOutcomes {
			t.Ended[k][o] = 0
		}
	}
	for rows.Next() {
		var kind, outcome string
		var n int64
		var last *time.Time
		if err := rows.Scan(&kind, &outcome, &n, &last); err != nil {
			return nil, fmt.Errorf("count runs: %w", err)
		}
		if t.Ended[kind] == nil {
			t.Ended[kind] = map[string]int64{}
		}
		t.Ended[kind][outcome] = n
		if last != nil && last.After(t.LastCompleted[kind]) {
			t.LastCompleted[kind] = *last
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	return t, nil
}

// Uptake is a recent release's rating-weighted uptake now.
type Uptake struct {
	Release    string
	FirstPrime time.Time
	// Weighted is the share of the active mirrors' ratings held by the
	// mirrors holding every file verified now (nil: every rating is 0).
	Weighted *float64
}

// RecentUptake gives the uptake of the releases first primed within the
// last period (at most limit, newest first): what an alert on a release
// still not on most mirrors some minutes after its prime reads.
func (r *Reporter) RecentUptake(ctx context.Context, period time.Duration, limit int) ([]Uptake, error) {
	rows, err := r.pool.Query(ctx, `
		WITH rel AS (
			SELECT r.id, r.name, r.file_count, min(p.started_at) AS first
			FROM sentry_releases r JOIN sentry_runs p ON p.release_id = r.id AND p.kind = 'prime'
			GROUP BY r.id HAVING min(p.started_at) > now() - $1::interval
			ORDER BY first DESC LIMIT $2
		), total AS (SELECT coalesce(sum(rating), 0) AS ratings FROM mirror_mirrors WHERE active)
		SELECT rel.name, rel.first, total.ratings,
		       (SELECT coalesce(sum(h.rating), 0) FROM (
		            SELECT fs.mirror_id, max(m.rating) AS rating FROM sentry_file_state fs
		            JOIN mirror_mirrors m ON m.id = fs.mirror_id AND m.active
		            LEFT JOIN sentry_mirror_state ms ON ms.mirror_id = m.id
		            WHERE fs.release_id = rel.id AND fs.result IN `+successSQL+` AND fs.verified_at IS NOT NULL
		              AND coalesce(ms.state, 'up') <> 'down'
		            GROUP BY fs.mirror_id HAVING count(*) = rel.file_count) h)
		FROM rel, total ORDER BY rel.first DESC`, period, limit)
	if err != nil {
		return nil, fmt.Errorf("recent uptake: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Uptake, error) {
		var u Uptake
		var total, held int
		err := row.Scan(&u.Release, &u.FirstPrime, &total, &held)
		u.Weighted = share(held, total)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("recent uptake: %w", err)
	}
	return out, nil
}
