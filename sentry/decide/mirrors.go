package decide

import (
	"fmt"
	"strings"
)

// Named picks, from the names of the active mirrors, those a run is
// restricted to (`--mirror NAME`): the indexes of want's names in active,
// in active's order; every index when want is empty. A name that is not an
// active mirror's is an error naming it and the active mirrors.
func Named(active, want []string) ([]int, error) {
	if len(want) == 0 {
		idx := make([]int, len(active))
		for i := range active {
			idx[i] = i
		}
		return idx, nil
	}
	wanted := map[string]bool{}
	for _, n := range want {
		wanted[n] = true
	}
	var idx []int
	for i, n := range active {
		if wanted[n] {
			idx = append(idx, i)
			delete(wanted, n)
		}
	}
	for _, n := range want {
		if wanted[n] {
			shown := active
			more := ""
			if len(shown) > 8 {
				shown, more = shown[:8], fmt.Sprintf(" and %d more", len(active)-8)
			}
			have := "none"
			if len(shown) > 0 {
				have = strings.Join(shown, ", ") + more
			}
			return nil, fmt.Errorf("no active mirror named %q (mirror_mirrors has no such name, or its active switch is off); active mirrors: %s", n, have)
		}
	}
	return idx, nil
}
