package report

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// FailingFile is a release file whose latest check on a mirror failed.
type FailingFile struct {
	Release string `json:"release"`
	Path    string `json:"path"`
	Kind    string `json:"kind"`
	// FirstSeen is when the file started failing (its first failed check
	// since it was last good); LastSeen is its latest check.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Detail    string    `json:"detail"`
	// FailedOver is the address family the file fails over alone, while
	// another family of the mirror serves it right ("" for none).
	FailedOver string `json:"failed_over"`
}

// StateChange is one change of a mirror's state, with its reason.
type StateChange struct {
	At     time.Time `json:"at"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
	RunID  *int64    `json:"run_id"`
}

// MirrorDetail is the report on one mirror.
type MirrorDetail struct {
	Window
	Mirror MirrorRow `json:"mirror"`
	// FailingFiles lists up to 1000 failing files (FailingTotal counts
	// them all), by release and path.
	FailingFiles []FailingFile `json:"failing_files"`
	FailingTotal int64         `json:"failing_total"`
	// History lists the state changes in the window, newest first (up to
	// 500).
	History []StateChange `json:"history"`
	// ByVantage splits the row's checks and failures in the window (by
	// the hour, as the row counts them) by the vantage point that made
	// them, by vantage name.
	ByVantage []VantageCount `json:"by_vantage"`
	// RecentFailures are the mirror's failures in the window, newest
	// first, a run of identical failures of one file (or of the mirror
	// itself) in a row collapsed into one entry with its count (at most
	// 100 entries, from the window's latest 20,000 checks).
	RecentFailures []FailureRun `json:"recent_failures"`
	// LangExceptions are the language exceptions its admin wrote, for
	// information: the redirector ignores them (offer.go).
	LangExceptions []LangException `json:"language_exceptions"`
}

// FailureRun is a run of identical failures: Count checks in a row of one
// file (Path, "" for the mirror itself) with the same kind and detail,
// from First to Last.
type FailureRun struct {
	Release string    `json:"release,omitempty"`
	Path    string    `json:"path"`
	Kind    string    `json:"kind"`
	Detail  string    `json:"detail"`
	Count   int64     `json:"count"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
	// Read is how the latest of these checks read the file's bytes:
	// "in full", "32 of 128 blocks" (a sampled check), or "" (it read
	// none: a HEAD, a refused request).
	Read string `json:"read"`
}

// Limits of RecentFailures.
const (
	maxFailureRuns   = 100
	maxFailureChecks = 20000
)

// VantageCount is a vantage point's checks of one mirror in a window.
type VantageCount struct {
	Vantage  string `json:"vantage"`
	Checks   int64  `json:"checks"`
	Failures int64  `json:"failures"`
}

// Mirror returns the report on the mirror named name (or with that id).
func (r *Reporter) Mirror(ctx context.Context, name string, w Window) (*MirrorDetail, error) {
	all, err := r.Mirrors(ctx, w) // one row per mirror: hundreds, not millions
	if err != nil {
		return nil, err
	}
	out := &MirrorDetail{Window: w, FailingFiles: []FailingFile{}, History: []StateChange{}, ByVantage: []VantageCount{},
		RecentFailures: []FailureRun{}}
	found := false
	for _, m := range all.Mirrors {
		if m.Name == name || fmt.Sprint(m.ID) == name {
			out.Mirror, found = m, true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("mirror %q: %w", name, ErrNotFound)
	}
	id := out.Mirror.ID
	err = pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM sentry_file_state
			WHERE mirror_id = $1 AND result NOT IN `+successSQL, id).Scan(&out.FailingTotal); err != nil {
			return err
		}
		exceptions, err := langExceptions(ctx, tx, id)
		if err != nil {
			return err
		}
		out.LangExceptions = exceptions
		rows, err := tx.Query(ctx, `
			SELECT r.name, fs.path, fs.result, coalesce(fs.failing_since, fs.last_checked_at), fs.last_checked_at, fs.detail, fs.failed_over
			FROM sentry_file_state fs JOIN sentry_releases r ON r.id = fs.release_id
			WHERE fs.mirror_id = $1 AND fs.result NOT IN `+successSQL+`
			ORDER BY r.name, fs.path LIMIT $2`, id, maxFailingFiles)
		if err != nil {
			return err
		}
		out.FailingFiles, err = pgx.AppendRows(out.FailingFiles, rows, func(row pgx.CollectableRow) (FailingFile, error) {
			var f FailingFile
			err := row.Scan(&f.Release, &f.Path, &f.Kind, &f.FirstSeen, &f.LastSeen, &f.Detail, &f.FailedOver)
			return f, err
		})
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `
			SELECT at, from_state, to_state, reason, run_id FROM sentry_state_changes
			WHERE mirror_id = $1 AND at >= $2 AND at < $3 ORDER BY at DESC, id DESC LIMIT $4`,
			id, w.Since, w.Until, maxStateChanges)
		if err != nil {
			return err
		}
		out.History, err = pgx.AppendRows(out.History, rows, func(row pgx.CollectableRow) (StateChange, error) {
			var c StateChange
			err := row.Scan(&c.At, &c.From, &c.To, &c.Reason, &c.RunID)
			return c, err
		})
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `
			SELECT vantage, sum(n), coalesce(sum(n) FILTER (WHERE result NOT IN `+successSQL+`), 0)
			FROM sentry_check_hourly WHERE mirror_id = $1 AND hour >= $2 AND hour < $3
			GROUP BY vantage ORDER BY vantage`, id, all.Since, all.Until) // the row's hours: the counts add up to its own
		if err != nil {
			return err
		}
		out.ByVantage, err = pgx.AppendRows(out.ByVantage, rows, func(row pgx.CollectableRow) (VantageCount, error) {
			var v VantageCount
			err := row.Scan(&v.Vantage, &v.Checks, &v.Failures)
			return v, err
		})
		if err != nil {
			return err
		}
		return recentFailures(ctx, tx, id, w, out)
	})
	if err != nil {
		return nil, fmt.Errorf("report on mirror %s: %w", name, err)
	}
	return out, nil
}

// recentFailures collapses the window's failures of a mirror into runs:
// a file's checks in time order (successes included) are cut where the
// result or the detail changes, and the pieces that failed are listed.
func recentFailures(ctx context.Context, tx pgx.Tx, id int, w Window, out *MirrorDetail) error {
	rows, err := tx.Query(ctx, `
		WITH c AS (
			SELECT checked_at, coalesce(release_id, 0) AS rel, path, result, detail, `+readSQL+` AS read FROM sentry_checks
			WHERE mirror_id = $1 AND checked_at >= $2 AND checked_at < $3
			ORDER BY checked_at DESC LIMIT $4
		), g AS (
			SELECT *, row_number() OVER (PARTITION BY rel, path ORDER BY checked_at)
			        - row_number() OVER (PARTITION BY rel, path, result, detail ORDER BY checked_at) AS grp
			FROM c
		)
		SELECT coalesce(r.name, ''), g.path, g.result, g.detail, count(*), min(g.checked_at), max(g.checked_at),
		       (array_agg(g.read ORDER BY g.checked_at DESC))[1]
		FROM g LEFT JOIN sentry_releases r ON r.id = g.rel
		WHERE g.result NOT IN `+successSQL+`
		GROUP BY r.name, g.rel, g.path, g.result, g.detail, g.grp
		ORDER BY max(g.checked_at) DESC, g.path LIMIT $5`, id, w.Since, w.Until, maxFailureChecks, maxFailureRuns)
	if err != nil {
		return err
	}
	out.RecentFailures, err = pgx.AppendRows(out.RecentFailures, rows, func(row pgx.CollectableRow) (FailureRun, error) {
		var f FailureRun
		err := row.Scan(&f.Release, &f.Path, &f.Kind, &f.Detail, &f.Count, &f.First, &f.Last, &f.Read)
		return f, err
	})
	return err
}

// readSQL says how a check of sentry_checks read the file's bytes (see
// FailureRun.Read).
const readSQL = `CASE WHEN hashed THEN 'in full'
	WHEN sample_blocks IS NOT NULL THEN sample_blocks || ' of ' || file_blocks || ' blocks' ELSE '' END`
