package decide

import (
	"slices"
	"testing"
)

func TestVouch(t *testing.T) {
	marks := []LocationMark{{1, Good}, {2, Missing}, {3, Trouble}, {4, Withheld}, {5, Unjudged}}
	tests := []struct {
		name           string
		verifiedBefore bool
		covered        []int
		marks          []LocationMark
		want           []LocationMark
	}{
		{"a mirror verified before keeps its marks (down after verified: active unchanged)", true, []int{1, 2, 3, 4, 5, 6},
			marks, marks},
		{"a mirror verified before, judged down: trouble everywhere stays trouble", true, []int{1, 2},
			[]LocationMark{{1, Trouble}, {2, Trouble}}, []LocationMark{{1, Trouble}, {2, Trouble}}},
		{"never verified: trouble and unjudged are unvouched, and so is every covered location not named",
			false, []int{1, 2, 3, 4, 5, 6},
			marks, []LocationMark{{1, Good}, {2, Missing}, {3, Unvouched}, {4, Withheld}, {5, Unvouched}, {6, Unvouched}}},
		{"never verified, unreachable (no marks): every covered location is unvouched", false, []int{7, 8},
			nil, []LocationMark{{7, Unvouched}, {8, Unvouched}}},
		{"never verified, judged down (trouble everywhere)", false, []int{1, 2},
			[]LocationMark{{1, Trouble}, {2, Trouble}}, []LocationMark{{1, Unvouched}, {2, Unvouched}}},
		{"never verified, first check verifies everything: nothing to take off", false, []int{1, 2},
			[]LocationMark{{1, Good}, {2, Good}}, []LocationMark{{1, Good}, {2, Good}}},
		{"nothing covered (the guard held marking back): marks as they are", false, nil,
			[]LocationMark{{1, Good}}, []LocationMark{{1, Good}}},
	}
	for _, tt := range tests {
		if got := Vouch(tt.verifiedBefore, tt.covered, tt.marks); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
