package decide

import (
	"testing"
	"time"
)

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
