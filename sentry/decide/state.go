package decide

import (
	"fmt"

	"github.com/mirrorsentry/sentry/checks"
)

// Mirror states, the words of sentry_mirror_state.state.
const (
	Up   = "up"
	Down = "down"
)

// FailedWholesale says whether a mirror failed a run as a whole: it was
// unreachable, or files were checked and none is present while every
// failure was transient — the mirror is in trouble, not its files. present
// counts the files found present; failures counts the failed files by
// kind.
func FailedWholesale(reachable bool, present int, failures map[checks.Kind]int) bool {
	if !reachable {
		return true
	}
	if present > 0 || len(failures) == 0 {
		return false
	}
	for k, n := range failures {
		if n > 0 && !k.Transient() {
			return false // the mirror answers; its files are missing or wrong
		}
	}
	return true
}

// State is a mirror's state across sweeps: up or down, and the streak of
// failed or good sweeps that hysteresis counts.
type State struct {
	State      string
	FailStreak int
	OkStreak   int
}

// Hysteresis is the configured number of failed sweeps that take a mirror
// down (state.down_after) and of good sweeps that bring it back
// (state.up_after).
type Hysteresis struct {
	DownAfter, UpAfter int
}

// Step is one sweep's effect on a mirror's state.
type Step struct {
	Next State
	// From is the state before when the state changed, "" otherwise.
	From string
	// prefix and suffix frame the sweep's reason (Reason).
	prefix, suffix string
}

// Reason is the sweep's reason for the mirror (what it found) framed by
// what the step did: "down after 2 failed sweeps: …", "…; failed sweep 1
// of 2 before down", "…; not counted: <guard>".
func (s Step) Reason(found string) string {
	return s.prefix + found + s.suffix
}

// Next is a sweep's step on a mirror in state prev: a failed sweep
// (failed) counts towards going down, a good one towards coming back;
// while the guard holds (guard not ""), a failed sweep counts for
// nothing. A streak counts up to its threshold and stays there (a mirror
// up for months has an ok streak of state.up_after), so that a mirror
// whose sweeps find nothing new has a state that does not change.
func (h Hysteresis) Next(prev State, failed bool, guard string) Step {
	st := Step{Next: prev}
	switch {
	case failed && guard != "":
		st.suffix = "; not counted: " + guard
	case failed:
		st.Next.FailStreak, st.Next.OkStreak = min(prev.FailStreak+1, max(h.DownAfter, 1)), 0
		if prev.State == Up && st.Next.FailStreak >= h.DownAfter {
			st.Next.State, st.From = Down, Up
			st.prefix = fmt.Sprintf("down after %d failed sweeps: ", st.Next.FailStreak)
		} else if prev.State == Up {
			st.suffix = fmt.Sprintf("; failed sweep %d of %d before down", st.Next.FailStreak, h.DownAfter)
		}
	default:
		st.Next.OkStreak, st.Next.FailStreak = min(prev.OkStreak+1, max(h.UpAfter, 1)), 0
		if prev.State == Down && st.Next.OkStreak >= h.UpAfter {
			st.Next.State, st.From = Up, Down
			st.prefix = fmt.Sprintf("up after %d good sweeps: ", st.Next.OkStreak)
		} else if prev.State == Down {
			st.suffix = fmt.Sprintf("; good sweep %d of %d before up", st.Next.OkStreak, h.UpAfter)
		}
	}
	return st
}

// PrimeDown is the step of a mirror a prime judged down (it failed the
// release wholesale and the guard did not hold): down at once, whatever
// its hysteresis said, with a full fail streak, so that the sweeps bring it
// back only after state.up_after good ones — the state every view shows
// agrees with the marks the prime wrote (healthy=false on its rows).
func (h Hysteresis) PrimeDown(prev State) Step {
	st := Step{Next: State{State: Down, FailStreak: max(h.DownAfter, 1)}}
	if prev.State != Down {
		st.From = prev.State
		st.prefix = "down: "
	}
	return st
}
