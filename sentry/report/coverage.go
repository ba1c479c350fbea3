package report

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/mirrorsentry/sentry/sentry/store"
)

// Coverage is, for a live release and a scheme its users arrive with, how
// many of its locations they reach no good copy of through the redirector
// (store.GoodCopiesSQL): what an alert reads.
type Coverage struct {
	Release string
	Scheme  string // "http" or "https"
	// Locations counts the release's locations (of active products, not
	// withdrawn) its products' users of Scheme arrive for; Without those
	// without a good copy offered to them.
	Locations int
	Without   int
}

// Coverages gives the coverage of the live releases — those with an
// active product — at most limit of them, newest first.
func (r *Reporter) Coverages(ctx context.Context, limit int) ([]Coverage, error) {
	rows, err := r.pool.Query(ctx, `
		SELECT r.id, r.name FROM sentry_releases r
		WHERE EXISTS (SELECT 1 FROM mirror_products p WHERE p.id = ANY (r.product_ids) AND p.active)
		ORDER BY r.first_seen DESC, r.id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("coverage: %w", err)
	}
	var ids []int64
	names := map[int64]string{}
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("coverage: %w", err)
		}
		ids, names[id] = append(ids, id), name
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("coverage: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err = r.pool.Query(ctx, `SELECT release_id, scheme, count(*), count(*) FILTER (WHERE mirrors = 0)
		FROM (`+store.GoodCopiesSQL+`) c GROUP BY release_id, scheme`, ids)
	if err != nil {
		return nil, fmt.Errorf("coverage: %w", err)
	}
	byRelease := map[int64][]Coverage{}
	for rows.Next() {
		var id int64
		var c Coverage
		if err := rows.Scan(&id, &c.Scheme, &c.Locations, &c.Without); err != nil {
			rows.Close()
			return nil, fmt.Errorf("coverage: %w", err)
		}
		c.Release, c.Scheme = names[id], strings.TrimSuffix(c.Scheme, "://")
		byRelease[id] = append(byRelease[id], c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("coverage: %w", err)
	}
	var out []Coverage
	for _, id := range ids {
		cs := byRelease[id]
		sort.Slice(cs, func(i, j int) bool { return cs[i].Scheme < cs[j].Scheme })
		out = append(out, cs...)
	}
	return out, nil
}
