package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Aliases: mirror_aliases names the product the redirector serves for an
// alias (firefox-latest → Firefox-1.5); sentry moves one when a release is
// ready (package promote), and records every move in sentry_alias_moves.

// aliasLock is the first key of the transaction-scoped advisory lock on
// an alias while it is judged and moved: one move at a time, whichever
// sentry makes it.
const aliasLock = 0x616c6973 // "alis"

// LockAlias takes the advisory lock of alias until q's transaction ends.
func LockAlias(ctx context.Context, q Querier, alias string) error {
	_, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, aliasLock, alias)
	return err
}

// AliasProduct returns the product alias names (mirror_aliases.related_product;
// "" when it names none), and whether it has a row.
func AliasProduct(ctx context.Context, q Querier, alias string) (string, bool, error) {
	var product *string
	err := q.QueryRow(ctx, `SELECT related_product FROM mirror_aliases WHERE alias = $1 ORDER BY id LIMIT 1`, alias).Scan(&product)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if product == nil {
		return "", true, nil
	}
	return *product, true, nil
}

// ReleaseFirstPrime returns when the release named name was first primed
// (its first prime's start), and whether sentry ever primed it.
func ReleaseFirstPrime(ctx context.Context, q Querier, name string) (time.Time, bool, error) {
	var at *time.Time
	err := q.QueryRow(ctx, `SELECT min(p.started_at) FROM sentry_releases r
		JOIN sentry_runs p ON p.release_id = r.id AND p.kind = 'prime' WHERE r.name = $1`, name).Scan(&at)
	if err != nil {
		return time.Time{}, false, err
	}
	if at == nil {
		return time.Time{}, false, nil
	}
	return *at, true, nil
}

// PrimedRelease is a release sentry primed, with its first prime's start.
type PrimedRelease struct {
	Name        string
	FirstPrimed time.Time
}

// PrimedReleases returns the releases sentry primed whose master copy is
// known good, first primed last first, at most limit: the candidates of
// an alias.
func PrimedReleases(ctx context.Context, q Querier, limit int) ([]PrimedRelease, error) {
	rows, err := q.Query(ctx, `SELECT r.name, min(p.started_at) FROM sentry_releases r
		JOIN sentry_runs p ON p.release_id = r.id AND p.kind = 'prime'
		WHERE r.master_state = 'ok'
		GROUP BY r.id, r.name ORDER BY 2 DESC, r.id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[PrimedRelease])
}

// AliasMove is one move of an alias, as sentry_alias_moves records it.
type AliasMove struct {
	Alias     string    `json:"alias"`
	From      string    `json:"from"` // "" when it named none
	To        string    `json:"to"`
	Release   string    `json:"release"`
	At        time.Time `json:"at"`
	By        string    `json:"by"` // prime, sweep, command
	RunID     int64     `json:"run_id,omitempty"`
	Forced    bool      `json:"forced"`
	MinUptake *float64  `json:"min_uptake"`
	Reason    string    `json:"reason"`
}

// MoveAlias points alias at product (its row created when it has none)
// and records the move, in q's transaction. It returns the move's time.
func MoveAlias(ctx context.Context, q Querier, m AliasMove, exists bool) (time.Time, error) {
	if exists {
		if _, err := q.Exec(ctx, `UPDATE mirror_aliases SET related_product = $2 WHERE alias = $1`, m.Alias, m.To); err != nil {
			return time.Time{}, err
		}
	} else if _, err := q.Exec(ctx, `INSERT INTO mirror_aliases (alias, related_product) VALUES ($1, $2)`, m.Alias, m.To); err != nil {
		return time.Time{}, err
	}
	var at time.Time
	err := q.QueryRow(ctx, `INSERT INTO sentry_alias_moves (alias, from_product, to_product, release, by, run_id, forced, min_uptake, reason)
		VALUES ($1, nullif($2, ''), $3, $4, $5, nullif($6, 0), $7, $8, $9) RETURNING at`,
		m.Alias, m.From, m.To, m.Release, m.By, m.RunID, m.Forced, m.MinUptake, m.Reason).Scan(&at)
	return at, err
}

// LastAliasMoves returns each alias's last move, by alias.
func LastAliasMoves(ctx context.Context, q Querier) ([]AliasMove, error) {
	rows, err := q.Query(ctx, `SELECT DISTINCT ON (alias) alias, coalesce(from_product, ''), to_product, release, at, by,
		coalesce(run_id, 0), forced, min_uptake, reason
		FROM sentry_alias_moves ORDER BY alias, at DESC, id DESC`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[AliasMove])
}
