package store

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Prime modes of sentry_mirror_settings.prime_mode.
const (
	ModePull    = "pull"
	ModeTrigger = "trigger"
	ModePassive = "passive"
)

// Mirror is an active bouncer mirror with sentry's settings for it.
type Mirror struct {
	ID      int
	Name    string
	BaseURL string // no trailing slash
	Rating  int
	// Mode is pull, trigger or passive (pull without a settings row).
	Mode       string
	TriggerURL string
	// MaxConcurrency is the mirror's own cap; 0 means the configured default.
	MaxConcurrency int
	// MaxRate is the mirror's own cap on requests per second; 0 means the
	// configured default (checks.per_mirror_rate).
	MaxRate float64
	// RsyncURL, when set, is an rsync:// URL of the mirror's counterpart of
	// the master's base URL: light sweeps list release trees through it.
	RsyncURL string
	// PurgeMethod and PurgeURL, when set, are how the mirror's cache drops
	// a file it serves wrong after a respin (primer.Purge).
	PurgeMethod, PurgeURL string
}

// ActiveMirrors returns the mirrors the admin switched on
// (mirror_mirrors.active), in id order. sentry never changes that switch.
func (s *Store) ActiveMirrors(ctx context.Context) ([]Mirror, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT m.id, m.name, rtrim(m.baseurl, '/'), m.rating,
		       coalesce(st.prime_mode, 'pull'), coalesce(st.trigger_url, ''), coalesce(st.max_concurrency, 0),
		       coalesce(st.max_rate, 0), rtrim(coalesce(st.rsync_url, ''), '/'),
		       coalesce(st.purge_method, ''), coalesce(st.purge_url, '')
		FROM mirror_mirrors m
		LEFT JOIN sentry_mirror_settings st ON st.mirror_id = m.id
		WHERE m.active
		ORDER BY m.id`)
	if err != nil {
		return nil, s.wrap("read mirrors", err)
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Mirror, error) {
		var m Mirror
		err := r.Scan(&m.ID, &m.Name, &m.BaseURL, &m.Rating, &m.Mode, &m.TriggerURL, &m.MaxConcurrency, &m.MaxRate, &m.RsyncURL,
			&m.PurgeMethod, &m.PurgeURL)
		return m, err
	})
	return ms, s.wrap("read mirrors", err)
}

// Product is a bouncer product with the languages its ":lang" locations
// expand to (empty when it has no mirror_product_langs rows).
type Product struct {
	ID     int
	Name   string
	Active bool
	// SSLOnly: mirror_products.ssl_only, the redirector offers the
	// product's files only from https:// mirrors (decide.Schemes).
	SSLOnly bool
	Langs   []string
}

// Location is a bouncer location: a path that may hold ":lang".
type Location struct {
	ID        int
	ProductID int
	Path      string
}

// Products returns the products with the given names (those that exist),
// with their languages. Names match case-insensitively, as the deployed
// redirector matches a request's product ("firefox-1.5" is the product a
// request for "Firefox-1.5" gets).
func (s *Store) Products(ctx context.Context, names []string) ([]Product, error) {
	lower := make([]string, len(names))
	for i, n := range names {
		lower[i] = strings.ToLower(n)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT p.id, p.name, p.active, p.ssl_only,
		       coalesce(array_agg(l.language ORDER BY l.language) FILTER (WHERE l.language IS NOT NULL AND l.language <> ''), '{}')
		FROM mirror_products p
		LEFT JOIN mirror_product_langs l ON l.product_id = p.id
		WHERE lower(p.name) = ANY($1)
		GROUP BY p.id, p.name, p.active, p.ssl_only
		ORDER BY p.id`, lower)
	if err != nil {
		return nil, s.wrap("read products", err)
	}
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Product, error) {
		var p Product
		err := r.Scan(&p.ID, &p.Name, &p.Active, &p.SSLOnly, &p.Langs)
		return p, err
	})
	return ps, s.wrap("read products", err)
}

// Locations returns the locations of the given products, in id order.
func (s *Store) Locations(ctx context.Context, productIDs []int) ([]Location, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, product_id, path FROM mirror_locations
		WHERE product_id = ANY($1) ORDER BY id`, productIDs)
	if err != nil {
		return nil, s.wrap("read locations", err)
	}
	ls, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Location, error) {
		var l Location
		err := r.Scan(&l.ID, &l.ProductID, &l.Path)
		return l, err
	})
	return ls, s.wrap("read locations", err)
}

// LangExceptions returns, for the given locations, the languages each
// mirror is excused from (mirror_lmm_lang_exceptions), keyed by
// [location id, mirror id].
func (s *Store) LangExceptions(ctx context.Context, locationIDs []int) (map[[2]int][]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT lmm.location_id, lmm.mirror_id, e.language
		FROM mirror_lmm_lang_exceptions e
		JOIN mirror_location_mirror_map lmm ON lmm.id = e.location_mirror_map_id
		WHERE lmm.location_id = ANY($1) AND e.language IS NOT NULL`, locationIDs)
	if err != nil {
		return nil, s.wrap("read language exceptions", err)
	}
	defer rows.Close()
	out := map[[2]int][]string{}
	for rows.Next() {
		var loc, mirror int
		var lang string
		if err := rows.Scan(&loc, &mirror, &lang); err != nil {
			return nil, s.wrap("read language exceptions", err)
		}
		k := [2]int{loc, mirror}
		out[k] = append(out[k], lang)
	}
	return out, s.wrap("read language exceptions", rows.Err())
}

// ProductNames returns the first limit product names, by name, and how
// many products there are (for errors naming what the bouncer holds).
func (s *Store) ProductNames(ctx context.Context, limit int) ([]string, int, error) {
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM mirror_products`).Scan(&total); err != nil {
		return nil, 0, s.wrap("read products", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT name FROM mirror_products ORDER BY name LIMIT $1`, limit)
	if err != nil {
		return nil, 0, s.wrap("read products", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return names, total, s.wrap("read products", err)
}
