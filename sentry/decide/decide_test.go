package decide

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mirrorsentry/sentry/checks"
)

func TestLocation(t *testing.T) {
	ok := File{Checked: true, Kind: checks.KindOK, Verified: true}
	headOnly := File{Checked: true, Kind: checks.KindOK}
	unchanged := File{Checked: true, Kind: checks.KindUnchanged, Verified: true}
	missing := File{Checked: true, Kind: checks.KindNotFound}
	corrupt := File{Checked: true, Kind: checks.KindChecksumMismatch}
	notPrimed := File{Checked: true, Kind: checks.KindNotPrimed}
	timeout := File{Checked: true, Kind: checks.KindTimeout}
	internal := File{Checked: true, Kind: checks.KindInternal}
	unchecked := File{}
	withheld := File{Checked: true, Kind: checks.KindUnchanged, Withheld: true}
	tests := []struct {
		name  string
		files []File
		want  Mark
	}{
		{"every file verified", []File{ok, ok}, Good},
		{"verified before, unchanged since", []File{ok, unchanged}, Good},
		{"no files: nothing to vouch for", nil, Unjudged},
		{"one file missing", []File{ok, missing}, Missing},
		{"one file corrupt", []File{corrupt, ok}, Missing},
		{"not primed by the deadline", []File{notPrimed}, Missing},
		{"missing wins over a file not checked", []File{unchecked, missing}, Missing},
		{"missing wins over trouble", []File{timeout, missing}, Missing},
		{"transient trouble", []File{ok, timeout}, Trouble},
		{"trouble and a present but unhashed file", []File{headOnly, timeout}, Trouble},
		{"a file not checked: sentry cannot say", []File{ok, unchecked}, Unjudged},
		{"sentry's own trouble", []File{internal, ok}, Unjudged},
		{"not checked wins over trouble", []File{timeout, unchecked}, Unjudged},
		{"present by HEAD only, never hashed", []File{headOnly, ok}, Unjudged},
		{"a file withheld until hashed", []File{ok, withheld}, Withheld},
		{"withheld wins over trouble and not checked", []File{timeout, unchecked, withheld}, Withheld},
		{"missing wins over withheld", []File{withheld, missing}, Missing},
	}
	for _, tt := range tests {
		if got := Location(tt.files); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestForSweep(t *testing.T) {
	tests := []struct {
		m    Mark
		up   bool
		want Mark
	}{
		{Good, true, Good},
		{Good, false, Unjudged},
		{Missing, true, Missing},
		{Missing, false, Missing},
		{Trouble, true, Unjudged},
		{Trouble, false, Unjudged},
		{Unjudged, true, Unjudged},
		{Withheld, true, Withheld},
		{Withheld, false, Withheld},
	}
	for _, tt := range tests {
		if got := ForSweep(tt.m, tt.up); got != tt.want {
			t.Errorf("ForSweep(%v, up %v) = %v, want %v", tt.m, tt.up, got, tt.want)
		}
	}
}

func TestKeepGoodAndAnyBad(t *testing.T) {
	marks := []LocationMark{{1, Good}, {2, Missing}, {3, Trouble}, {4, Good}}
	if got := KeepGood(marks); !slices.Equal(got, []LocationMark{{1, Good}, {4, Good}}) {
		t.Errorf("KeepGood: %v", got)
	}
	if AnyBad([]LocationMark{{5, Withheld}}) || len(KeepGood([]LocationMark{{5, Withheld}})) != 0 {
		t.Errorf("a withheld mark is not a failure, nor kept under the guard")
	}
	if !AnyBad(marks) || AnyBad(KeepGood(marks)) || AnyBad(nil) {
		t.Error("AnyBad: wrong")
	}
}

func TestGuard(t *testing.T) {
	tests := []struct {
		name string
		f    GuardFacts
		held bool
	}{
		{"nothing failed", GuardFacts{Checked: 10, MaxDownFraction: 0.5}, false},
		{"a few failed", GuardFacts{Failed: 5, Checked: 10, MaxDownFraction: 0.5}, false},
		{"more than the fraction failed", GuardFacts{Failed: 6, Checked: 10, MaxDownFraction: 0.5}, true},
		{"every mirror failed", GuardFacts{Failed: 1, Checked: 1, MaxDownFraction: 0.5}, true},
		{"a fraction of 1 never holds for failures", GuardFacts{Failed: 10, Checked: 10, MaxDownFraction: 1}, false},
		{"the master is unreachable", GuardFacts{MasterDown: "the master is unreachable (connect)", Checked: 10, MaxDownFraction: 0.5}, true},
		{"nothing checked", GuardFacts{Failed: 0, Checked: 0, MaxDownFraction: 0.5}, false},
	}
	for _, tt := range tests {
		why := Guard(tt.f)
		if (why != "") != tt.held {
			t.Errorf("%s: held %q, want held %v", tt.name, why, tt.held)
		}
	}
	if why := Guard(GuardFacts{Failed: 3, Checked: 4, MaxDownFraction: 0.5, Failing: "failed the sweep"}); why !=
		"3 of 4 mirrors failed the sweep (more than guard.max_down_fraction 0.50): suspecting sentry's own network" {
		t.Errorf("reason: %q", why)
	}
}

func TestFailedWholesale(t *testing.T) {
	k := func(kinds ...checks.Kind) map[checks.Kind]int {
		m := map[checks.Kind]int{}
		for _, x := range kinds {
			m[x]++
		}
		return m
	}
	tests := []struct {
		name      string
		reachable bool
		present   int
		failures  map[checks.Kind]int
		want      bool
	}{
		{"unreachable", false, 0, nil, true},
		{"nothing checked", true, 0, nil, false},
		{"all present", true, 5, nil, false},
		{"some present, some timing out", true, 1, k(checks.KindTimeout), false},
		{"none present, every failure transient", true, 0, k(checks.KindTimeout, checks.KindConnect), true},
		{"none present, one missing: the mirror answers", true, 0, k(checks.KindTimeout, checks.KindNotFound), false},
		{"none present, all missing", true, 0, k(checks.KindNotFound), false},
		{"sentry's own trouble is no proof of the mirror's", true, 0, k(checks.KindInternal), false},
	}
	for _, tt := range tests {
		if got := FailedWholesale(tt.reachable, tt.present, tt.failures); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestHysteresis(t *testing.T) {
	h := Hysteresis{DownAfter: 2, UpAfter: 3}
	up, down := State{State: Up}, State{State: Down}
	tests := []struct {
		name   string
		prev   State
		failed bool
		guard  string
		next   State
		from   string
		reason string
	}{
		{"a good sweep keeps a mirror up", up, false, "", State{Up, 0, 1}, "", "found"},
		{"one failed sweep is not enough", up, true, "", State{Up, 1, 0}, "", "found; failed sweep 1 of 2 before down"},
		{"the second failed sweep takes it down", State{Up, 1, 0}, true, "", State{Down, 2, 0}, Up, "down after 2 failed sweeps: found"},
		{"a good sweep resets the fail streak", State{Up, 1, 0}, false, "", State{Up, 0, 1}, "", "found"},
		{"under the guard a failure counts for nothing", State{Up, 1, 0}, true, "net", State{Up, 1, 0}, "", "found; not counted: net"},
		{"the guard does not stop a good sweep counting", down, false, "net", State{Down, 0, 1}, "", "found; good sweep 1 of 3 before up"},
		{"down, two good sweeps are not enough", State{Down, 0, 1}, false, "", State{Down, 0, 2}, "", "found; good sweep 2 of 3 before up"},
		{"the third good sweep brings it back", State{Down, 0, 2}, false, "", State{Up, 0, 3}, Down, "up after 3 good sweeps: found"},
		{"down, a failed sweep resets the good streak", State{Down, 0, 2}, true, "", State{Down, 1, 0}, "", "found"},
		{"a steady mirror's streak stays at its threshold", State{Up, 0, 3}, false, "", State{Up, 0, 3}, "", "found"},
		{"a mirror down for long: its fail streak stays", State{Down, 2, 0}, true, "", State{Down, 2, 0}, "", "found"},
	}
	for _, tt := range tests {
		st := h.Next(tt.prev, tt.failed, tt.guard)
		if st.Next != tt.next || st.From != tt.from || st.Reason("found") != tt.reason {
			t.Errorf("%s: %+v from %q %q; want %+v from %q %q", tt.name, st.Next, st.From, st.Reason("found"),
				tt.next, tt.from, tt.reason)
		}
	}
}

func TestPrimeDown(t *testing.T) {
	h := Hysteresis{DownAfter: 2, UpAfter: 3}
	tests := []struct {
		name string
		prev State
		from string
	}{
		{"an up mirror goes down at once", State{Up, 0, 3}, Up},
		{"one failed sweep or none, down all the same", State{Up, 1, 0}, Up},
		{"a mirror down already stays down, its change not told again", State{Down, 0, 2}, ""},
	}
	for _, tt := range tests {
		st := h.PrimeDown(tt.prev)
		if st.Next != (State{Down, 2, 0}) || st.From != tt.from {
			t.Errorf("%s: %+v from %q, want down with a fail streak of 2, from %q", tt.name, st.Next, st.From, tt.from)
		}
		// Back up only after up_after good sweeps.
		next := st.Next
		for i := 1; i < h.UpAfter; i++ {
			next = h.Next(next, false, "").Next
		}
		if next.State != Down || h.Next(next, false, "").Next.State != Up {
			t.Errorf("%s: not back up after exactly %d good sweeps", tt.name, h.UpAfter)
		}
	}
}

func TestNewQuorum(t *testing.T) {
	for _, tt := range []struct{ configured, seen, need int }{
		{0, 1, 1}, {0, 2, 2}, {0, 3, 2}, {0, 4, 3}, {0, 0, 1}, {1, 3, 1}, {3, 3, 3},
	} {
		if q := NewQuorum(tt.configured, tt.seen); q.Need != tt.need {
			t.Errorf("NewQuorum(%d, %d).Need = %d, want %d", tt.configured, tt.seen, q.Need, tt.need)
		}
	}
}

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
	world := func(n int, vantages []string, fails map[string][]int) []Verdicts {
		var ms []Verdicts
		for i := range n {
			vs := Verdicts{}
			for _, v := range vantages {
				vs[v] = slices.Contains(fails[v], i)
			}
			ms = append(ms, vs)
		}
		return ms
	}
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
		q       Quorum
		mirrors []Verdicts
		ignored []string
		want    map[int]want // by mirror index; others: checked by all, nothing failing
	}{
		{
			name:    "one of three fails a mirror: partial, not counted",
			q:       Quorum{Need: 2, Seen: 3},
			mirrors: world(10, three, map[string][]int{"eu": {0}}),
			want:    map[int]want{0: {failing: []string{"eu"}, checked: three, partial: true}},
		},
		{
			name:    "two of three: counted",
			q:       Quorum{Need: 2, Seen: 3},
			mirrors: world(10, three, map[string][]int{"eu": {0}, "ap": {0}}),
			want:    map[int]want{0: {failing: []string{"ap", "eu"}, checked: three, failed: true}},
		},
		{
			name:    "a quorum of one: one vantage point is enough",
			q:       Quorum{Need: 1, Seen: 3},
			mirrors: world(10, three, map[string][]int{"eu": {0}}),
			want:    map[int]want{0: {failing: []string{"eu"}, checked: three, failed: true}},
		},
		{
			name:    "one vantage point alone behaves as before",
			q:       Quorum{Need: 1, Seen: 1},
			mirrors: world(10, []string{"us"}, map[string][]int{"us": {0, 1, 2, 3, 4, 5, 6}}),
			want:    same(want{failing: []string{"us"}, checked: []string{"us"}, failed: true}, 0, 1, 2, 3, 4, 5, 6),
		},
		{
			name:    "a vantage point failing most mirrors while others reach them is set aside",
			q:       Quorum{Need: 2, Seen: 3},
			mirrors: world(10, three, map[string][]int{"ap": {0, 1, 2, 3, 4, 5, 6, 7}, "eu": {0}}),
			ignored: []string{"ap"},
			want: map[int]want{
				0: {failing: []string{"eu"}, checked: []string{"eu", "us"}, partial: true},
				7: {checked: []string{"eu", "us"}},
			},
		},
		{
			name:    "every vantage point failing most mirrors: none set aside, the guard decides",
			q:       Quorum{Need: 2, Seen: 3},
			mirrors: world(4, three, map[string][]int{"ap": {0, 1, 2}, "eu": {0, 1, 2}, "us": {0, 1, 2}}),
			want:    same(want{failing: three, checked: three, failed: true}, 0, 1, 2),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counted, ignored := tt.q.Apply(tt.mirrors, 0.5)
			if !slices.Equal(ignored, tt.ignored) {
				t.Errorf("set aside %v, want %v", ignored, tt.ignored)
			}
			for i, vs := range tt.mirrors {
				w, ok := tt.want[i]
				if !ok {
					w = want{checked: slices.Sorted(func(yield func(string) bool) {
						for v := range vs {
							if !slices.Contains(tt.ignored, v) && !yield(v) {
								return
							}
						}
					})}
				}
				c := counted[i]
				if !slices.Equal(c.FailingFrom, w.failing) || !slices.Equal(c.CheckedFrom, w.checked) || c.Failed != w.failed || c.Partial != w.partial {
					t.Errorf("mirror %d: %s", i, fmt.Sprintf("failing from %v, checked from %v, failed %v, partial %v; want %v, %v, %v, %v",
						c.FailingFrom, c.CheckedFrom, c.Failed, c.Partial, w.failing, w.checked, w.failed, w.partial))
				}
			}
		})
	}
}

func TestNamed(t *testing.T) {
	active := []string{"a", "b", "c"}
	if got, err := Named(active, nil); err != nil || len(got) != 3 {
		t.Errorf("no restriction: %v %v", got, err)
	}
	if got, err := Named(active, []string{"c", "a", "c"}); err != nil || len(got) != 2 || got[0] != 0 || got[1] != 2 {
		t.Errorf("c, a: %v %v", got, err)
	}
	_, err := Named(active, []string{"a", "nope"})
	if err == nil || !strings.Contains(err.Error(), `no active mirror named "nope"`) || !strings.Contains(err.Error(), "a, b, c") ||
		strings.Contains(err.Error(), "\n") {
		t.Errorf("unknown name: %v", err)
	}
}
