package decide

import (
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
