package sentry

import (
	"fmt"
	"slices"
	"testing"
)

// TestQuorumApply: how the vantage points' verdicts on each mirror make a
// sweep count against it, and when a vantage point's verdicts are set
// aside as its own network's trouble.
func TestQuorumApply(t *testing.T) {
	type want struct {
		failing, checked []string
		failed, partial  bool
	}
	// world builds n mirrors; fails[v] lists the mirrors (by index) that
	// vantage point v failed; every vantage point checked every mirror.
	world := func(n int, vantages []string, fails map[string][]int) []*mirrorSweep {
		var ms []*mirrorSweep
		for i := range n {
			m := &mirrorSweep{verdicts: map[string]vantageVerdict{}}
			m.sums.Name = fmt.Sprintf("m%d", i)
			for _, v := range vantages {
				m.verdicts[v] = vantageVerdict{Failed: slices.Contains(fails[v], i), Reachable: !slices.Contains(fails[v], i)}
			}
			ms = append(ms, m)
		}
		return ms
	}
	// same expects w of each mirror listed.
	same := func(w want, mirrors ...int) map[int]want {
		out := map[int]want{}
		for _, i := range mirrors {
			out[i] = w
		}
		return out
	}
	three := []string{"ap", "eu", "us"}
	tests := []struct {
		name    string
		q       quorum
		mirrors []*mirrorSweep
		ignored []string
		want    map[int]want // by mirror index; others: checked by all, nothing failing
	}{
		{
			name:    "one of three fails a mirror: partial, not counted",
			q:       quorum{need: 2, seen: 3},
			mirrors: world(10, three, map[string][]int{"eu": {0}}),
			want:    map[int]want{0: {failing: []string{"eu"}, checked: three, partial: true}},
		},
		{
			name:    "two of three: counted",
			q:       quorum{need: 2, seen: 3},
			mirrors: world(10, three, map[string][]int{"eu": {0}, "ap": {0}}),
			want:    map[int]want{0: {failing: []string{"ap", "eu"}, checked: three, failed: true}},
		},
		{
			name:    "a quorum of one: one vantage point is enough",
			q:       quorum{need: 1, seen: 3},
			mirrors: world(10, three, map[string][]int{"eu": {0}}),
			want:    map[int]want{0: {failing: []string{"eu"}, checked: three, failed: true}},
		},
		{
			name:    "one vantage point alone behaves as before",
			q:       quorum{need: 1, seen: 1},
			mirrors: world(10, []string{"us"}, map[string][]int{"us": {0, 1, 2, 3, 4, 5, 6}}),
			want:    same(want{failing: []string{"us"}, checked: []string{"us"}, failed: true}, 0, 1, 2, 3, 4, 5, 6),
		},
		{
			name:    "a vantage point failing most mirrors while others reach them is set aside",
			q:       quorum{need: 2, seen: 3},
			mirrors: world(10, three, map[string][]int{"ap": {0, 1, 2, 3, 4, 5, 6, 7}, "eu": {0}}),
			ignored: []string{"ap"},
			want: map[int]want{
				0: {failing: []string{"eu"}, checked: []string{"eu", "us"}, partial: true},
				7: {checked: []string{"eu", "us"}},
			},
		},
		{
			name:    "every vantage point failing most mirrors: none set aside, the guard decides",
			q:       quorum{need: 2, seen: 3},
			mirrors: world(4, three, map[string][]int{"ap": {0, 1, 2}, "eu": {0, 1, 2}, "us": {0, 1, 2}}),
			want:    same(want{failing: three, checked: three, failed: true}, 0, 1, 2),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ignored := tt.q.apply(tt.mirrors, 0.5)
			if !slices.Equal(ignored, tt.ignored) {
				t.Errorf("set aside %v, want %v", ignored, tt.ignored)
			}
			for i, m := range tt.mirrors {
				w, ok := tt.want[i]
				if !ok {
					w = want{checked: slices.Sorted(func(yield func(string) bool) {
						for v := range m.verdicts {
							if !slices.Contains(tt.ignored, v) && !yield(v) {
								return
							}
						}
					})}
				}
				s := m.sums
				if !slices.Equal(s.FailingFrom, w.failing) || !slices.Equal(s.CheckedFrom, w.checked) || s.SweepFailed != w.failed || s.Partial != w.partial {
					t.Errorf("mirror %d: failing from %v, checked from %v, failed %v, partial %v; want %v, %v, %v, %v",
						i, s.FailingFrom, s.CheckedFrom, s.SweepFailed, s.Partial, w.failing, w.checked, w.failed, w.partial)
				}
			}
		})
	}
}
