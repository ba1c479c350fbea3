package decide

import (
	"slices"
	"testing"
)

func TestBrokenFamilies(t *testing.T) {
	v4ok6bad := map[string]bool{"ipv4": false, "ipv6": true}
	allOK := map[string]bool{"ipv4": false, "ipv6": false}
	allBad := map[string]bool{"ipv4": true, "ipv6": true}
	for _, tt := range []struct {
		name  string
		v     FamilyVerdicts
		need  int
		aside map[[2]string]bool
		want  []string
	}{
		{"IPv6 refused, IPv4 fine", FamilyVerdicts{"us": v4ok6bad}, 1, nil, []string{"ipv6"}},
		{"every family fine", FamilyVerdicts{"us": allOK}, 1, nil, nil},
		{"every family failing is unreachable, not broken", FamilyVerdicts{"us": allBad}, 1, nil, nil},
		{"one of two vantage points: under the quorum", FamilyVerdicts{"us": v4ok6bad, "eu": allOK}, 2, nil, nil},
		{"both vantage points: broken", FamilyVerdicts{"us": v4ok6bad, "eu": v4ok6bad}, 2, nil, []string{"ipv6"}},
		{"a verdict set aside does not count", FamilyVerdicts{"us": v4ok6bad}, 1, map[[2]string]bool{{"us", "ipv6"}: true}, nil},
	} {
		if got := BrokenFamilies(tt.v, tt.need, tt.aside); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	// A vantage point whose IPv6 fails on most mirrors is its own trouble.
	mirrors := []FamilyVerdicts{{"us": v4ok6bad, "eu": allOK}, {"us": v4ok6bad, "eu": allOK}, {"us": v4ok6bad, "eu": v4ok6bad}}
	aside := FamiliesSetAside(mirrors, 0.5)
	if !aside[[2]string{"us", "ipv6"}] || aside[[2]string{"eu", "ipv6"}] || aside[[2]string{"us", "ipv4"}] || len(aside) != 1 {
		t.Errorf("set aside: %v, want us over ipv6 only", aside)
	}
	if !FamilyCountsAgainst("down", []string{"ipv6"}) || FamilyCountsAgainst("degraded", []string{"ipv6"}) || FamilyCountsAgainst("down", nil) {
		t.Error("FamilyCountsAgainst: wrong")
	}
}
