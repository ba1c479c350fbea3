package report

import "time"

// MaintenanceInfo is a maintenance window holding now.
type MaintenanceInfo struct {
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
}

// Line is the window in one line: "maintenance until 2026-11-25 18:00
// UTC, disk swap".
func (w *MaintenanceInfo) Line() string {
	s := "maintenance until " + w.Until.UTC().Format("2006-01-02 15:04 UTC")
	if w.Reason != "" {
		s += ", " + oneLine(w.Reason)
	}
	return s
}
