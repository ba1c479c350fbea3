package decide

import "fmt"

// GuardFacts are what the mass-failure guard decides on.
type GuardFacts struct {
	// MasterDown is why the master is unreachable, "" when it answered
	// (or was not asked: nothing bad was to be written).
	MasterDown string
	// Failed counts the mirrors that failed the run as a whole
	// (FailedWholesale); Checked the mirrors the run judged.
	Failed, Checked int
	// MaxDownFraction is guard.max_down_fraction.
	MaxDownFraction float64
	// Failing says what Failed mirrors did, for the reason: "failed
	// wholesale" (a prime), "failed the sweep".
	Failing string
}

// Guard decides whether the mass-failure guard holds back marking, and
// why. sentry suspects its own network, and marks nothing down, when the
// master is unreachable or more than guard.max_down_fraction of the
// mirrors failed at once. "" means marking goes ahead.
func Guard(f GuardFacts) string {
	if f.MasterDown != "" {
		return f.MasterDown
	}
	if f.Failed == 0 || f.Checked == 0 {
		return ""
	}
	if frac := float64(f.Failed) / float64(f.Checked); frac > f.MaxDownFraction {
		return fmt.Sprintf("%d of %d mirrors %s (more than guard.max_down_fraction %.2f): suspecting sentry's own network",
			f.Failed, f.Checked, f.Failing, f.MaxDownFraction)
	}
	return ""
}
