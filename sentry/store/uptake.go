package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier runs statements: the pool, or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// ErrNoMatch is returned (wrapped) when no product or operating system
// matches what an uptake query asks for.
var ErrNoMatch = errors.New("no match")

// LocationUptake is how far one location has spread, counted two ways.
type LocationUptake struct {
	LocationID int
	Product    string
	OS         string
	Path       string
	// Available and Total are the bouncer admin app's uptake (Mozilla's
	// tuxedo, /api/uptake/): the summed ratings of the admin-active
	// mirrors whose row for the location is active (Holders of them), and
	// of every admin-active mirror.
	Available, Total int64
	Holders          int
	// EligibleAvailable and EligibleTotal are sentry's: the summed ratings
	// of the mirrors the deployed redirector can offer for the location's
	// product (OfferableSQL: the admin switch, a region row, the
	// product's scheme) whose row for the location is active and healthy
	// (verified: sentry sets active only for a file it verified there),
	// and of every such mirror.
	EligibleAvailable, EligibleTotal int64
}

// Share is the eligible uptake, EligibleAvailable over EligibleTotal; ok
// is false when no rating is eligible.
func (u LocationUptake) Share() (share float64, ok bool) {
	if u.EligibleTotal <= 0 {
		return 0, false
	}
	return float64(u.EligibleAvailable) / float64(u.EligibleTotal), true
}

// MatchNames returns the ids of the rows of table (mirror_products or
// mirror_os) named name: exactly, or, fuzzy, whose name holds name in any
// case (the admin app's name__icontains).
func MatchNames(ctx context.Context, q Querier, table, name string, fuzzy bool) ([]int, error) {
	if table != "mirror_products" && table != "mirror_os" {
		return nil, errors.New("store: match names of " + table + ": not a table of names")
	}
	sql := `SELECT id FROM ` + table + ` WHERE name = $1 ORDER BY id`
	if fuzzy {
		sql = `SELECT id FROM ` + table + ` WHERE strpos(lower(name), lower($1)) > 0 ORDER BY id`
	}
	rows, err := q.Query(ctx, sql, name)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}

// LocationUptakes returns the uptake of the locations of products and of
// operating systems oses (an empty list: any), by product name, then
// operating system name, then id.
func LocationUptakes(ctx context.Context, q Querier, products, oses []int) ([]LocationUptake, error) {
	if products == nil {
		products = []int{}
	}
	if oses == nil {
		oses = []int{}
	}
	rows, err := q.Query(ctx, `
		SELECT l.id, p.name, o.name, l.path,
		       held.ratings, held.mirrors, total.ratings,
		       coalesce((SELECT sum(m.rating) FROM mirror_location_mirror_map lmm JOIN mirror_mirrors m ON m.id = lmm.mirror_id
		                 WHERE lmm.location_id = l.id AND lmm.active AND lmm.healthy AND `+OfferableSQL("m", "p")+`), 0),
		       coalesce((SELECT sum(m.rating) FROM mirror_mirrors m WHERE `+OfferableSQL("m", "p")+`), 0)
		FROM mirror_locations l
		JOIN mirror_products p ON p.id = l.product_id
		JOIN mirror_os o ON o.id = l.os_id
		CROSS JOIN LATERAL (SELECT coalesce(sum(m.rating), 0) AS ratings, count(*) AS mirrors
		                    FROM mirror_location_mirror_map lmm JOIN mirror_mirrors m ON m.id = lmm.mirror_id
		                    WHERE lmm.location_id = l.id AND lmm.active AND m.active) held
		CROSS JOIN (SELECT coalesce(sum(rating), 0) AS ratings FROM mirror_mirrors WHERE active) total
		WHERE (cardinality($1::int[]) = 0 OR p.id = ANY ($1)) AND (cardinality($2::int[]) = 0 OR o.id = ANY ($2))
		ORDER BY p.name, o.name, l.id`, products, oses)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (LocationUptake, error) {
		var u LocationUptake
		err := r.Scan(&u.LocationID, &u.Product, &u.OS, &u.Path, &u.Available, &u.Holders, &u.Total, &u.EligibleAvailable, &u.EligibleTotal)
		return u, err
	})
}
