package report

import (
	"fmt"
	"time"

	"github.com/mirrorsentry/sentry/sentry/config"
)

// ParseSince reads a window's start (`sentry report --since`, ?since=): a duration back from now ("24h", "7d") or a
// date or time ("2006-01-02", RFC 3339), UTC unless it says otherwise.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if d, err := config.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: the duration must be positive", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{"2006-01-02", "2006-01-02T15:04", time.RFC3339} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			if !t.Before(now) {
				return time.Time{}, fmt.Errorf("%q is not in the past", s)
			}
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (24h, 7d) nor a date (2006-01-02)", s)
}
