package report

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/sentry/store"
)

// The uptake API: what release automation asks the bouncer admin app
// (Mozilla's tuxedo, GET /api/uptake/?product=P&os=O[&fuzzy=1]) before it
// moves an alias, answered from the bouncer tables the way the admin app
// computes it, and with what sentry knows besides: the uptake of each
// location among the mirrors the redirector can offer for its product,
// verified.

// UptakeQuery is a query of the uptake API: a product's name and an
// operating system's name (at least one), matched exactly or, Fuzzy, by
// substring in any case.
type UptakeQuery struct {
	Product, OS string
	Fuzzy       bool
}

// UptakeError is an uptake query the admin app refuses, with its error
// number: 101, a required parameter missing; 102, nothing matched.
type UptakeError struct {
	Number  int
	Message string
}

func (e *UptakeError) Error() string { return fmt.Sprintf("%s (error %d)", e.Message, e.Number) }

// UptakeItem is one location's uptake.
type UptakeItem struct {
	Product    string `json:"product"`
	OS         string `json:"os"`
	LocationID int    `json:"location_id"`
	Path       string `json:"path"`
	// Available and Total are the admin app's: the summed ratings of the
	// active mirrors whose row for the location is active, and of all
	// active mirrors. Holders counts the mirrors of Available.
	Available int64 `json:"available"`
	Total     int64 `json:"total"`
	Holders   int   `json:"mirrors"`
	// EligibleAvailable and EligibleTotal are sentry's: among the mirrors
	// the redirector can offer for the product (admin switch, region row,
	// scheme), the summed ratings of those holding the location verified
	// (active and healthy), and of all of them; EligibleUptake is their
	// share (null when no rating is eligible).
	EligibleAvailable int64    `json:"eligible_available"`
	EligibleTotal     int64    `json:"eligible_total"`
	EligibleUptake    *float64 `json:"eligible_uptake"`
}

// UptakeAnswer is the answer to an uptake query: every location of the
// matching products and operating systems.
type UptakeAnswer struct {
	Query UptakeQuery  `json:"-"`
	Items []UptakeItem `json:"items"`
}

// LocationUptake answers an uptake query. Its error is an *UptakeError
// for a query the admin app refuses.
func (r *Reporter) LocationUptake(ctx context.Context, q UptakeQuery) (*UptakeAnswer, error) {
	if q.Product == "" && q.OS == "" {
		return nil, &UptakeError{Number: 101, Message: "product and/or os are required GET parameters."}
	}
	out := &UptakeAnswer{Query: q, Items: []UptakeItem{}}
	err := pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var products, oses []int
		var err error
		if q.Product != "" {
			if products, err = store.MatchNames(ctx, tx, "mirror_products", q.Product, q.Fuzzy); err != nil {
				return err
			}
			if len(products) == 0 {
				return &UptakeError{Number: 102, Message: "No products found"}
			}
		}
		if q.OS != "" {
			if oses, err = store.MatchNames(ctx, tx, "mirror_os", q.OS, q.Fuzzy); err != nil {
				return err
			}
			if len(oses) == 0 {
				return &UptakeError{Number: 102, Message: "No OSes found"}
			}
		}
		locs, err := store.LocationUptakes(ctx, tx, products, oses)
		if err != nil {
			return err
		}
		for _, l := range locs {
			it := UptakeItem{Product: l.Product, OS: l.OS, LocationID: l.LocationID, Path: l.Path, Available: l.Available,
				Total: l.Total, Holders: l.Holders, EligibleAvailable: l.EligibleAvailable, EligibleTotal: l.EligibleTotal}
			if s, ok := l.Share(); ok {
				it.EligibleUptake = &s
			}
			out.Items = append(out.Items, it)
		}
		return nil
	})
	if err != nil {
		if _, ok := err.(*UptakeError); ok {
			return nil, err
		}
		return nil, fmt.Errorf("uptake: %w", err)
	}
	return out, nil
}
