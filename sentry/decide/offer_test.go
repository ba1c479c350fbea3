package decide

import "testing"

func TestOfferFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		active bool
		region bool
		base   string
		want   Scheme
		offer  Offer
	}{
		{"http mirror, http request", true, true, "http://m.example/pub", HTTP, Offerable},
		{"https mirror, https request", true, true, "https://m.example/pub", HTTPS, Offerable},
		{"http mirror, ssl_only product", true, true, "http://m.example/pub", HTTPS, WrongScheme},
		{"https mirror, plain request", true, true, "https://m.example/pub", HTTP, WrongScheme},
		{"no region", true, false, "http://m.example/pub", HTTP, NoRegion},
		{"switched off first", false, false, "ftp://m.example/pub", HTTP, SwitchedOff},
		{"upper-case scheme: LIKE is case-sensitive", true, true, "HTTP://m.example/pub", HTTP, WrongScheme},
		{"neither scheme", true, true, "ftp://m.example/pub", HTTP, WrongScheme},
	}
	for _, tt := range tests {
		if got := OfferFor(tt.active, tt.region, tt.base, tt.want); got != tt.offer {
			t.Errorf("%s: OfferFor = %q, want %q", tt.name, got, tt.offer)
		}
	}
}

func TestSchemes(t *testing.T) {
	t.Parallel()
	if got := ProductScheme(true); got != HTTPS {
		t.Errorf("ProductScheme(ssl_only) = %q", got)
	}
	if got := ProductScheme(false); got != HTTP {
		t.Errorf("ProductScheme(plain) = %q", got)
	}
	if got := Schemes(true); len(got) != 1 || got[0] != HTTPS {
		t.Errorf("Schemes(ssl_only) = %v", got)
	}
	if got := Schemes(false); len(got) != 2 {
		t.Errorf("Schemes(plain) = %v", got)
	}
}
