// Package redirector is, for tests, the deployed redirector's answer to a
// download request, read from the bouncer tables sentry marks the way
// Mozilla's Go port of bouncer read them in its last version that picked
// mirrors from mirror_location_mirror_map (DESIGN section 2,
// mozilla-services/go-bouncer bouncer/db.go and handlers.go of then):
//
//   - the product name may be an alias (mirror_aliases), resolved first;
//     names match case-insensitively (MySQL's collation);
//   - the product must have the request's language among its
//     mirror_product_langs rows, or have none (a LEFT JOIN);
//   - the location is the product's row for the operating system, its
//     path copied as stored into the redirect, ":lang" replaced;
//   - the mirrors are those of the query below, first with
//     healthy = true and, only when none, with healthy = false (the
//     fallback); one is picked at random weighted by rating;
//   - the scheme: https:// base URLs for an ssl_only product or a request
//     that arrived over https, http:// ones for any other;
//   - the region join is an inner join; the language exceptions are joined
//     but never filter.
//
// A test asks it for every (product, os, language, scheme) and follows
// every candidate, not a random one.
package redirector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Querier runs queries: a *pgxpool.Pool or a pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Request is a download request.
type Request struct {
	Product string // a product's name or an alias, in any case
	OS      string
	Lang    string
	HTTPS   bool // the request arrived over https
}

func (r Request) String() string {
	s := "http"
	if r.HTTPS {
		s = "https"
	}
	return fmt.Sprintf("%s %s %s over %s", r.Product, r.OS, r.Lang, s)
}

// Answer is the redirector's answer: where it may send the user.
type Answer struct {
	Product    string // the product's name, aliases resolved
	SSLOnly    bool
	LocationID int
	Path       string // the location's path as stored
	// Fallback: no healthy row holds the location; the candidates are
	// the rows with healthy=false.
	Fallback bool
	// Candidates are the rows of the query, in its order (by rating): the
	// weighted random pick lands on one of those with a positive rating.
	// A mirror in several regions is a row per region.
	Candidates []Candidate
}

// Candidate is a mirror the pick may land on, and the redirect to it.
type Candidate struct {
	MirrorID int
	BaseURL  string
	Rating   int
	// URL is the redirect: the base URL and the location's path as
	// stored, ":lang" replaced by the request's language.
	URL string
}

// Mirrors are the ids of the candidates the pick may land on (a positive
// rating), each once, in the query's order.
func (a *Answer) Mirrors() []int {
	var ids []int
	for _, c := range a.Candidates {
		if c.Rating > 0 && !slices.Contains(ids, c.MirrorID) {
			ids = append(ids, c.MirrorID)
		}
	}
	return ids
}

// URLs are the redirects of the candidates the pick may land on, by
// mirror id.
func (a *Answer) URLs() map[int]string {
	out := map[int]string{}
	for _, c := range a.Candidates {
		if c.Rating > 0 {
			out[c.MirrorID] = c.URL
		}
	}
	return out
}

// mirrorsSQL is the query of the Go port (DESIGN section 2), in
// PostgreSQL: $1 the language (for the exception join, which never
// filters), $2 the location, $3 healthy, $4 the scheme prefix.
const mirrorsSQL = `
	SELECT m.id, m.baseurl, m.rating
	FROM mirror_mirrors m
	JOIN mirror_location_mirror_map lmm ON lmm.mirror_id = m.id
	LEFT JOIN mirror_lmm_lang_exceptions lang_exc
	       ON lmm.id = lang_exc.location_mirror_map_id AND NOT lang_exc.language = $1
	JOIN geoip_mirror_region_map g ON g.mirror_id = m.id
	WHERE lmm.location_id = $2 AND m.active AND lmm.active AND lmm.healthy = $3
	  AND m.baseurl LIKE $4 || '%'
	ORDER BY m.rating`

// Ask answers req. A nil Answer without error is the redirector's 404 for
// no such product (in that language), operating system or location; an
// Answer without candidates its 404 for a location no mirror is offered
// for.
func Ask(ctx context.Context, db Querier, req Request) (*Answer, error) {
	product := req.Product
	err := db.QueryRow(ctx, `SELECT related_product FROM mirror_aliases WHERE lower(alias) = lower($1)`, req.Product).Scan(&product)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("alias of %q: %w", req.Product, err)
	}
	var osID int
	switch err := db.QueryRow(ctx, `SELECT id FROM mirror_os WHERE lower(name) = lower($1)`, req.OS).Scan(&osID); {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("os %q: %w", req.OS, err)
	}
	a := &Answer{}
	var productID int
	switch err := db.QueryRow(ctx, `SELECT p.id, p.name, p.ssl_only FROM mirror_products p
		LEFT JOIN mirror_product_langs l ON l.product_id = p.id
		WHERE lower(p.name) = lower($1) AND (lower(l.language) = lower($2) OR l.language IS NULL)
		ORDER BY p.id LIMIT 1`, product, req.Lang).Scan(&productID, &a.Product, &a.SSLOnly); {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("product %q in %q: %w", product, req.Lang, err)
	}
	switch err := db.QueryRow(ctx, `SELECT id, path FROM mirror_locations WHERE product_id = $1 AND os_id = $2
		ORDER BY id LIMIT 1`, productID, osID).Scan(&a.LocationID, &a.Path); {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("location of %s on %s: %w", a.Product, req.OS, err)
	}
	scheme := "http://"
	if a.SSLOnly || req.HTTPS {
		scheme = "https://"
	}
	path := strings.ReplaceAll(a.Path, ":lang", req.Lang)
	for _, healthy := range []bool{true, false} {
		rows, err := db.Query(ctx, mirrorsSQL, req.Lang, a.LocationID, healthy, scheme)
		if err != nil {
			return nil, fmt.Errorf("mirrors of location %d: %w", a.LocationID, err)
		}
		cands, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Candidate, error) {
			var c Candidate
			err := r.Scan(&c.MirrorID, &c.BaseURL, &c.Rating)
			c.URL = c.BaseURL + path
			return c, err
		})
		if err != nil {
			return nil, fmt.Errorf("mirrors of location %d: %w", a.LocationID, err)
		}
		if len(cands) > 0 {
			a.Candidates, a.Fallback = cands, !healthy
			return a, nil
		}
	}
	return a, nil
}
