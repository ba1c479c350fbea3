package store

import (
	"context"
	"fmt"
	"slices"
)

// What the deployed redirector can serve, in SQL, for every view that
// counts mirrors (uptake, good copies, capacity): OfferableSQL and
// OfferableForSchemeSQL (offer.go) for one product or one scheme, and
// below for a release and for a location. decide/offer.go and
// decide/eligible.go are the same rules in Go, with the reasons.

// ReleaseOfferableSQL is the SQL condition that mirror m (alias of
// mirror_mirrors) can be offered by the redirector for some product of
// release r (alias of sentry_releases), each product with its own scheme
// (OfferableSQL; decide.OfferForRelease): the mirrors uptake counts. A
// release whose products are not recorded yet (product_ids empty) counts
// an active mirror with a region of either scheme.
func ReleaseOfferableSQL(m, r string) string {
	return fmt.Sprintf(`(CASE WHEN cardinality(%[2]s.product_ids) = 0
		THEN %[1]s.active AND %[3]s AND (%[1]s.baseurl LIKE 'http://%%' OR %[1]s.baseurl LIKE 'https://%%')
		ELSE EXISTS (SELECT 1 FROM mirror_products rp WHERE rp.id = ANY (%[2]s.product_ids) AND %[4]s) END)`,
		m, r, HasRegionSQL(m), OfferableSQL(m, "rp"))
}

// GoodCopiesSQL counts, for each location of the active products of the
// releases $1 (bigint[]) — withdrawn ones aside — and each scheme its
// users arrive with (decide.Schemes: 'http://' and 'https://' for a plain
// product, 'https://' only for an ssl_only one), the mirrors the
// redirector can offer it from to those users holding it good
// (mirror_location_mirror_map active and healthy): columns release_id,
// location_id, product, path, scheme, mirrors. A row with 0 mirrors is a
// location whose users of that scheme reach no good copy: at best the
// fallback, at worst "no mirror".
var GoodCopiesSQL = `
	SELECT r.id AS release_id, l.id AS location_id, p.name AS product, l.path, s.scheme,
	       (SELECT count(*) FROM mirror_location_mirror_map lmm JOIN mirror_mirrors m ON m.id = lmm.mirror_id
	        WHERE lmm.location_id = l.id AND lmm.active AND lmm.healthy AND ` + OfferableForSchemeSQL("m", "s.scheme") + `) AS mirrors
	FROM sentry_releases r
	JOIN mirror_products p ON p.id = ANY (r.product_ids) AND p.active
	JOIN mirror_locations l ON l.product_id = p.id
	CROSS JOIN LATERAL unnest(CASE WHEN p.ssl_only THEN ARRAY['https://'] ELSE ARRAY['http://', 'https://'] END) AS s(scheme)
	WHERE r.id = ANY ($1)
	  AND NOT EXISTS (SELECT 1 FROM sentry_withdrawn_locations w WHERE w.location_id = l.id)`

// SetReleaseProducts records the bouncer products of a release (the ids
// its patterns name, as the last plan found them), writing only when they
// changed.
func (s *Store) SetReleaseProducts(ctx context.Context, releaseID int64, productIDs []int) error {
	ids := slices.Clone(productIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if ids == nil {
		ids = []int{}
	}
	_, err := s.pool.Exec(ctx, `UPDATE sentry_releases SET product_ids = $2
		WHERE id = $1 AND product_ids IS DISTINCT FROM $2::int[]`, releaseID, ids)
	return s.wrap("record the release's products", err)
}
