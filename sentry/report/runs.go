package report

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/sentry/store"
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

// RunTotals is what the runs of every sentry on the database say, for
// /metrics: the runs ended in the last Window, by kind and outcome; the
// outcome of the newest ended run of each kind; when a run of each kind
// last ran through (completed or guarded). Counts over a window rather
// than since the beginning, since old runs are pruned.
type RunTotals struct {
	Window        time.Duration
	Ended         map[string]map[string]int64
	LastOutcome   map[string]string
	LastCompleted map[string]time.Time
}

// RunKinds and EndOutcomes are the words of RunTotals' keys.
var (
	RunKinds    = []string{"prime", "sweep", "deep_sweep"}
	EndOutcomes = []string{"completed", "guarded", "interrupted", "failed"}
)

// RunTotals reads the runs ended within window, whoever ran them.
func (r *Reporter) RunTotals(ctx context.Context, window time.Duration) (*RunTotals, error) {
	t := &RunTotals{Window: window, Ended: map[string]map[string]int64{}, LastOutcome: map[string]string{},
		LastCompleted: map[string]time.Time{}}
	for _, k := range RunKinds {
		t.Ended[k] = map[string]int64{}
		for _, o := range EndOutcomes {
			t.Ended[k][o] = 0
		}
	}
	rows, err := r.pool.Query(ctx, `
		SELECT kind, outcome, count(*) FROM sentry_runs
		WHERE outcome <> 'running' AND finished_at > now() - $1::interval GROUP BY kind, outcome`, window)
	if err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	for rows.Next() {
		var kind, outcome string
		var n int64
		if err := rows.Scan(&kind, &outcome, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("count runs: %w", err)
		}
		if t.Ended[kind] == nil {
			t.Ended[kind] = map[string]int64{}
		}
		t.Ended[kind][outcome] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	// The newest ended run of each kind, and the newest that ran through:
	// one index scan per kind (sentry_runs_started_idx).
	rows, err = r.pool.Query(ctx, `
		SELECT k.kind, last.outcome, done.finished_at
		FROM unnest($1::text[]) AS k(kind)
		LEFT JOIN LATERAL (SELECT outcome FROM sentry_runs WHERE kind = k.kind AND outcome <> 'running'
		                   ORDER BY started_at DESC LIMIT 1) last ON true
		LEFT JOIN LATERAL (SELECT finished_at FROM sentry_runs WHERE kind = k.kind AND outcome IN ('completed', 'guarded')
		                   ORDER BY started_at DESC LIMIT 1) done ON true`, RunKinds)
	if err != nil {
		return nil, fmt.Errorf("last runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind string
		var outcome *string
		var at *time.Time
		if err := rows.Scan(&kind, &outcome, &at); err != nil {
			return nil, fmt.Errorf("last runs: %w", err)
		}
		if outcome != nil {
			t.LastOutcome[kind] = *outcome
		}
		if at != nil {
			t.LastCompleted[kind] = *at
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("last runs: %w", err)
	}
	return t, nil
}

// Uptake is a recent release's rating-weighted uptake now.
type Uptake struct {
	Release    string
	FirstPrime time.Time
	// Weighted is the share of the ratings of the mirrors the redirector
	// can offer for the release (store.ReleaseOfferableSQL) held by those
	// of them holding every file verified now (nil: every rating is 0).
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
		)
		SELECT rel.name, rel.first,
		       (SELECT coalesce(sum(m.rating), 0) FROM mirror_mirrors m WHERE `+store.ReleaseOfferableSQL("m", "r")+`),
		       (SELECT coalesce(sum(h.rating), 0) FROM (
		            SELECT fs.mirror_id, max(m.rating) AS rating FROM sentry_file_state fs
		            JOIN mirror_mirrors m ON m.id = fs.mirror_id AND `+store.ReleaseOfferableSQL("m", "r")+`
		            LEFT JOIN sentry_mirror_state ms ON ms.mirror_id = m.id
		            WHERE fs.release_id = rel.id AND fs.result IN `+successSQL+` AND fs.verified_at IS NOT NULL
		              AND coalesce(ms.state, 'up') <> 'down'
		            GROUP BY fs.mirror_id HAVING count(*) = rel.file_count) h)
		FROM rel JOIN sentry_releases r ON r.id = rel.id ORDER BY rel.first DESC`, period, limit)
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
