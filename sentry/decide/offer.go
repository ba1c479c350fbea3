package decide

import "strings"

// How the deployed redirector chooses the mirrors it may offer for a
// product (DESIGN section 2): an admin-active mirror with a region row
// (geoip_mirror_region_map, an inner join), whose base URL is of the
// scheme the request needs — https:// for an ssl_only product or a request
// that arrived over https, http:// for any other. A mirror it can never
// offer does not serve a product's users, whatever sentry verified there:
// uptake, capacity and "a good copy exists" count only offerable mirrors.

// Scheme is the prefix of a base URL that the redirector's scheme filter
// matches (`baseurl LIKE 'https://%'`, case-sensitive as SQL's LIKE).
type Scheme string

const (
	HTTP  Scheme = "http://"
	HTTPS Scheme = "https://"
)

// ProductScheme is the scheme of a product's requests: https for an
// ssl_only product, http for any other (whose users arriving over https
// are offered https:// mirrors too: see Schemes).
func ProductScheme(sslOnly bool) Scheme {
	if sslOnly {
		return HTTPS
	}
	return HTTP
}

// Schemes are the schemes a product's users arrive with: https only for an
// ssl_only product, both for any other.
func Schemes(sslOnly bool) []Scheme {
	if sslOnly {
		return []Scheme{HTTPS}
	}
	return []Scheme{HTTP, HTTPS}
}

// SchemeOf is the scheme of a base URL as the redirector's filter sees
// it, "" when it is neither (such a mirror is never offered).
func SchemeOf(baseURL string) Scheme {
	switch {
	case strings.HasPrefix(baseURL, string(HTTPS)):
		return HTTPS
	case strings.HasPrefix(baseURL, string(HTTP)):
		return HTTP
	}
	return ""
}

// Offer says whether the redirector can offer a mirror for a product's
// requests, and if not, why.
type Offer string

const (
	// Offerable: the redirector offers the mirror for the location's
	// files it is marked active and healthy for.
	Offerable Offer = ""
	// SwitchedOff: mirror_mirrors.active is false (the admin's switch).
	SwitchedOff Offer = "switched off by its admin"
	// NoRegion: the mirror has no geoip_mirror_region_map row, and the
	// redirector's region join drops it.
	NoRegion Offer = "no region (geoip_mirror_region_map)"
	// WrongScheme: the mirror's base URL is not of the scheme the
	// requests need (an http:// mirror for an ssl_only product).
	WrongScheme Offer = "wrong scheme"
)

// OfferFor decides whether the redirector can offer a mirror (its admin
// switch, whether it has a region row, its base URL) to requests of
// scheme want.
func OfferFor(active, hasRegion bool, baseURL string, want Scheme) Offer {
	switch {
	case !active:
		return SwitchedOff
	case !hasRegion:
		return NoRegion
	case SchemeOf(baseURL) != want:
		return WrongScheme
	}
	return Offerable
}
