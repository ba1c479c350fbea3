package hook

import (
	"testing"
	"time"
)

// The replay set drops entries once they expire, in expiry order whatever
// the insertion order, and never drops a live one.
func TestSeenSetExpiry(t *testing.T) {
	t0 := time.Unix(1_732_527_000, 0)
	s := newSeenSet(3)
	key := func(i int64) seenKey { return seenKey{ts: i} }
	for i, exp := range []time.Duration{30, 10, 20} { // seconds after t0
		if replayed, full, _ := s.add(key(int64(i)), t0.Add(exp*time.Second), t0); replayed || full {
			t.Fatalf("add %d: replayed %v, full %v", i, replayed, full)
		}
	}
	if _, full, retry := s.add(key(9), t0.Add(time.Minute), t0); !full || retry != 10*time.Second {
		t.Errorf("fourth add: full %v, retry %s; want full, 10s (the earliest expiry)", full, retry)
	}
	tests := []struct {
		at       time.Duration // seconds after t0
		live     int
		replayed []int64 // still refused as replays
	}{
		{10, 3, []int64{0, 1, 2}}, // expiring at t0+10s: still live at that second
		{11, 2, []int64{0, 2}},
		{25, 1, []int64{0}},
		{31, 0, nil},
	}
	for _, tc := range tests {
		now := t0.Add(tc.at * time.Second)
		for _, k := range tc.replayed {
			if replayed, _, _ := s.add(key(k), now.Add(time.Hour), now); !replayed {
				t.Errorf("at +%ds: key %d not refused as a replay", tc.at, k)
			}
		}
		if got := s.live(now); got != tc.live {
			t.Errorf("at +%ds: %d entries, want %d", tc.at, got, tc.live)
		}
	}
	// A key that expired can be recorded anew.
	if replayed, full, _ := s.add(key(1), t0.Add(time.Hour), t0.Add(time.Minute)); replayed || full {
		t.Errorf("re-adding an expired key: replayed %v, full %v", replayed, full)
	}
}
