package decide

import (
	"strings"
	"testing"
	"time"
)

func TestPromote(t *testing.T) {
	t.Parallel()
	u := func(v float64) *float64 { return &v }
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	older, newer := t0, t0.Add(time.Hour)
	known15 := AliasTarget{Product: "Firefox-1.5", Known: true, FirstPrimed: older}
	cand := func(first time.Time, us ...*float64) AliasCandidate {
		return AliasCandidate{Product: "Firefox-2.0", FirstPrimed: first, Uptakes: us}
	}
	tests := []struct {
		name        string
		cur         AliasTarget
		cand        AliasCandidate
		force       bool
		move, there bool
		why         string
	}{
		{"every location at the threshold", known15, cand(newer, u(0.8), u(1)), false, true, false, "every location at 80.0%"},
		{"4 of 5 is 0.8", known15, cand(newer, u(4.0/5.0)), false, true, false, "lowest 80.0%"},
		{"one location at 79%", known15, cand(newer, u(0.79), u(1)), false, false, false, "1 of 2 locations below 80.0%"},
		{"a location no mirror can be offered for", known15, cand(newer, nil, u(1)), false, false, false, "lowest none"},
		{"no location", known15, cand(newer), false, false, false, "no location"},
		{"never backwards", AliasTarget{Product: "Firefox-3.0", Known: true, FirstPrimed: newer}, cand(older, u(1)), false, false, false, "never backwards"},
		{"the same first prime is not backwards", AliasTarget{Product: "Firefox-2.0-beta", Known: true, FirstPrimed: newer}, cand(newer, u(1)), false, true, false, ""},
		{"a target sentry does not know holds nothing back", AliasTarget{Product: "Firefox-9.9"}, cand(older, u(0.9)), false, true, false, ""},
		{"no alias row yet", AliasTarget{}, cand(newer, u(0.8)), false, true, false, ""},
		{"already there, any case", AliasTarget{Product: "firefox-2.0", Known: true, FirstPrimed: newer}, cand(newer, u(0.1)), true, false, true, "already names"},
		{"forced below the threshold", known15, cand(newer, u(0.1)), true, true, false, "forced"},
		{"forced backwards: a rollback", AliasTarget{Product: "Firefox-3.0", Known: true, FirstPrimed: newer}, cand(older, u(0.5)), true, true, false, "forced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Promote(tt.cur, tt.cand, 0.8, tt.force)
			if p.Move != tt.move || p.Already != tt.there || !strings.Contains(p.Why, tt.why) || p.Backwards != (tt.why == "never backwards") {
				t.Errorf("Promote = %+v, want move %v already %v why ~%q", p, tt.move, tt.there, tt.why)
			}
		})
	}
}
