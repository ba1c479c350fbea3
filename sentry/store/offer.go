package store

import "fmt"

// OfferableSQL is the SQL condition that a mirror (alias m, of
// mirror_mirrors) can be offered by the deployed redirector for requests
// of product p (alias of mirror_products) arriving with that product's own
// scheme: the admin's switch, a region row (the redirector joins
// geoip_mirror_region_map), and the base URL's scheme (https:// for an
// ssl_only product, http:// for any other; LIKE is case-sensitive, as the
// redirector's). decide.OfferFor is the same rule in Go, with the reason.
func OfferableSQL(m, p string) string {
	return OfferableForSchemeSQL(m, fmt.Sprintf(`CASE WHEN %s.ssl_only THEN 'https://' ELSE 'http://' END`, p))
}

// OfferableForSchemeSQL is OfferableSQL for requests of a given scheme
// (the SQL expression scheme: 'http://' or 'https://'), whatever the
// product: a plain product's users arriving over https are offered
// https:// mirrors.
func OfferableForSchemeSQL(m, scheme string) string {
	return fmt.Sprintf(`(%[1]s.active AND %[3]s
		AND %[1]s.baseurl LIKE %[2]s || '%%')`, m, scheme, HasRegionSQL(m))
}

// HasRegionSQL is the SQL condition that mirror m (alias of
// mirror_mirrors) has a region row: the redirector joins
// geoip_mirror_region_map, and a mirror without one is never offered.
func HasRegionSQL(m string) string {
	return fmt.Sprintf(`EXISTS (SELECT 1 FROM geoip_mirror_region_map g WHERE g.mirror_id = %s.id)`, m)
}
