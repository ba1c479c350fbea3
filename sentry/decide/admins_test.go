package decide

import (
	"slices"
	"testing"
	"time"
)

func TestTLSWarning(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, tt := range []struct {
		name     string
		notAfter time.Time
		want     bool
	}{
		{"ends in 5 days: warned", now.Add(5 * day), true},
		{"ends in 20 days: no warning", now.Add(20 * day), false},
		{"ends exactly at the threshold: no warning yet", now.Add(14 * day), false},
		{"expired: a failure, not a warning", now.Add(-time.Minute), false},
	} {
		if got := TLSWarning(tt.notAfter, now, 14*day); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestMaintenanceAndReturn(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	if !InMaintenance(t0, t0.Add(time.Hour), t0.Add(time.Minute)) || InMaintenance(t0, t0.Add(time.Hour), t0.Add(time.Hour)) ||
		InMaintenance(t0, t0.Add(time.Hour), t0.Add(-time.Minute)) || InMaintenance(time.Time{}, time.Time{}, t0) {
		t.Error("InMaintenance: wrong window bounds")
	}
	for _, tt := range []struct {
		name              string
		hashed, suspended time.Time
		rehash            bool
	}{
		{"not suspended: nothing to hash again", t0.Add(-time.Hour), time.Time{}, false},
		{"hashed before the suspension: hashed again", t0.Add(-time.Hour), t0, true},
		{"hashed at the very instant of the suspension: not since, hashed again", t0, t0, true},
		{"hashed a microsecond after the suspension: since", t0.Add(time.Microsecond), t0, false},
		{"hashed after the suspension: since", t0.Add(time.Hour), t0, false},
		{"never hashed: to hash", time.Time{}, t0, true},
	} {
		if got := RehashOnReturn(tt.hashed, tt.suspended); got != tt.rehash {
			t.Errorf("RehashOnReturn, %s: %v, want %v", tt.name, got, tt.rehash)
		}
	}
	if !Returned(false, true, 0) || Returned(true, true, 0) || Returned(false, false, 0) || Returned(false, true, 1) {
		t.Error("Returned: wrong")
	}
}

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
