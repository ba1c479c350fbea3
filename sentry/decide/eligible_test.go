package decide

import "testing"

func TestOfferForRelease(t *testing.T) {
	t.Parallel()
	const http, https = "http://m.example/pub", "https://m.example/pub"
	tests := []struct {
		name    string
		active  bool
		region  bool
		base    string
		sslOnly []bool
		want    Offer
	}{
		{"http mirror, plain product", true, true, http, []bool{false}, Offerable},
		{"http mirror, ssl_only product only", true, true, http, []bool{true}, WrongScheme},
		{"http mirror, a plain and an ssl_only product", true, true, http, []bool{true, false}, Offerable},
		{"https mirror, plain product only: counted by the product's scheme", true, true, https, []bool{false}, WrongScheme},
		{"https mirror, a plain and an ssl_only product", true, true, https, []bool{false, true}, Offerable},
		{"no region", true, false, https, []bool{true}, NoRegion},
		{"switched off", false, true, http, []bool{false}, SwitchedOff},
		{"products unknown: either scheme", true, true, https, nil, Offerable},
		{"products unknown, no region", true, false, http, nil, NoRegion},
		{"products unknown, neither scheme", true, true, "HTTP://m.example/pub", nil, WrongScheme},
	}
	for _, tt := range tests {
		if got := OfferForRelease(tt.active, tt.region, tt.base, tt.sslOnly); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	never := []struct {
		name    string
		region  bool
		base    string
		sslOnly []bool
		want    Offer
	}{
		{"http mirror, ssl_only products only", true, http, []bool{true, true}, WrongScheme},
		{"https mirror, plain product: offered to its https users", true, https, []bool{false}, Offerable},
		{"http mirror, a plain product", true, http, []bool{false, true}, Offerable},
		{"no region", false, https, []bool{false}, NoRegion},
		{"neither scheme", true, "HTTP://m.example/pub", []bool{false}, WrongScheme},
	}
	for _, tt := range never {
		if got := NeverOfferedForRelease(true, tt.region, tt.base, tt.sslOnly); got != tt.want {
			t.Errorf("never offered, %s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestNeverOffered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		active, region bool
		base           string
		want           Offer
	}{
		{true, true, "http://m.example/pub", Offerable},
		{true, true, "https://m.example/pub", Offerable},
		{true, false, "https://m.example/pub", NoRegion},
		{true, true, "HTTP://m.example/pub", WrongScheme},
		{true, true, "ftp://m.example/pub", WrongScheme},
		{false, false, "ftp://m.example/pub", SwitchedOff},
	}
	for _, tt := range tests {
		if got := NeverOffered(tt.active, tt.region, tt.base); got != tt.want {
			t.Errorf("NeverOffered(%v, %v, %q) = %q, want %q", tt.active, tt.region, tt.base, got, tt.want)
		}
	}
	for _, tt := range []struct {
		o    Offer
		base string
		ssl  bool
		want string
	}{
		{WrongScheme, "http://m.example/pub", true, "wrong scheme: an http:// mirror, and the products are ssl_only (https:// mirrors only)"},
		{WrongScheme, "HTTP://m.example/pub", false, "wrong scheme: its base URL starts with neither http:// nor https:// (the redirector's filter is case-sensitive)"},
		{NoRegion, "http://m.example/pub", false, "no region (geoip_mirror_region_map)"},
		{Offerable, "http://m.example/pub", false, ""},
	} {
		if got := tt.o.Explain(tt.base, tt.ssl); got != tt.want {
			t.Errorf("%q.Explain(%q, %v) = %q, want %q", tt.o, tt.base, tt.ssl, got, tt.want)
		}
	}
}
