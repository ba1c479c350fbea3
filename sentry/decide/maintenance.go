package decide

import "time"

// InMaintenance says whether a maintenance window from since until until
// holds at now.
func InMaintenance(since, until, now time.Time) bool {
	return !since.IsZero() && !now.Before(since) && now.Before(until)
}
