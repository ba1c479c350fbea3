package decide

// What the deployed redirector can offer a mirror for, beyond one request
// (offer.go): a release's products, and the mirror as a whole.

// OfferForRelease decides whether the redirector can offer a mirror for at
// least one of a release's products with that product's own scheme
// (ProductScheme: https:// for an ssl_only product, http:// for any other),
// and if not, why: what uptake counts a mirror by. sslOnly holds each
// product's mirror_products.ssl_only; a release whose products are not
// known yet (none) takes a mirror of either scheme.
func OfferForRelease(active, hasRegion bool, baseURL string, sslOnly []bool) Offer {
	return offerForProducts(active, hasRegion, baseURL, sslOnly, func(ssl bool) []Scheme { return []Scheme{ProductScheme(ssl)} })
}

// NeverOfferedForRelease says why the redirector never offers a mirror
// for any request for a release's products, whatever scheme their users
// arrive with (Schemes: an http:// mirror for a release whose products are
// all ssl_only, a mirror without a region), and Offerable when it offers
// it for some.
func NeverOfferedForRelease(active, hasRegion bool, baseURL string, sslOnly []bool) Offer {
	return offerForProducts(active, hasRegion, baseURL, sslOnly, Schemes)
}

func offerForProducts(active, hasRegion bool, baseURL string, sslOnly []bool, schemes func(bool) []Scheme) Offer {
	if len(sslOnly) == 0 {
		return NeverOffered(active, hasRegion, baseURL)
	}
	var why Offer
	for _, ssl := range sslOnly {
		for _, s := range schemes(ssl) {
			o := OfferFor(active, hasRegion, baseURL, s)
			if o == Offerable {
				return Offerable
			}
			why = o
		}
	}
	return why
}

// NeverOffered says why the redirector never offers an admin-active
// mirror for any request — it has no region row, or its base URL is of
// neither scheme the filter matches (case-sensitive: "HTTP://" is
// neither) — and Offerable when it may offer it for some. A mirror the
// admin switched off is SwitchedOff.
func NeverOffered(active, hasRegion bool, baseURL string) Offer {
	switch {
	case !active:
		return SwitchedOff
	case !hasRegion:
		return NoRegion
	case SchemeOf(baseURL) == "":
		return WrongScheme
	}
	return Offerable
}

// Explain is an Offer in a line for people: why the redirector does not
// offer the mirror; sslOnly says whether every product concerned is
// ssl_only (the scheme they need). "" for Offerable.
func (o Offer) Explain(baseURL string, sslOnly bool) string {
	switch {
	case o == WrongScheme && SchemeOf(baseURL) == "":
		return "wrong scheme: its base URL starts with neither http:// nor https:// (the redirector's filter is case-sensitive)"
	case o == WrongScheme && sslOnly:
		return "wrong scheme: an " + string(SchemeOf(baseURL)) + " mirror, and the products are ssl_only (https:// mirrors only)"
	case o == WrongScheme:
		return "wrong scheme: an " + string(SchemeOf(baseURL)) + " mirror, and the products need " + string(HTTP)
	}
	return string(o)
}
