package report

import (
	"context"
	"fmt"
	"time"
)

// Day is one bucket of a mirror's history strip.
type Day struct {
	Start    time.Time `json:"start"`
	Checks   int64     `json:"checks"`
	Failures int64     `json:"failures"`
}

// History returns, for every mirror with checks in the last days days
// (ending now), its checks and failures per day (UTC), oldest first, every
// day present.
func (r *Reporter) History(ctx context.Context, days int) (map[int][]Day, time.Time, error) {
	end := r.now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	start := end.Add(-time.Duration(days) * 24 * time.Hour)
	rows, err := r.pool.Query(ctx, `
		SELECT mirror_id, floor(extract(epoch FROM hour - $1) / 86400)::int AS day,
		       sum(n), coalesce(sum(n) FILTER (WHERE result NOT IN `+successSQL+`), 0)
		FROM sentry_check_hourly WHERE hour >= $1 AND hour < $2
		GROUP BY 1, 2`, start, end)
	if err != nil {
		return nil, start, fmt.Errorf("mirror history: %w", err)
	}
	out := map[int][]Day{}
	for rows.Next() {
		var id, day int
		var d Day
		if err := rows.Scan(&id, &day, &d.Checks, &d.Failures); err != nil {
			rows.Close()
			return nil, start, fmt.Errorf("mirror history: %w", err)
		}
		if day < 0 || day >= days {
			continue
		}
		strip, ok := out[id]
		if !ok {
			strip = make([]Day, days)
			for i := range strip {
				strip[i].Start = start.Add(time.Duration(i) * 24 * time.Hour)
			}
			out[id] = strip
		}
		strip[day].Checks, strip[day].Failures = d.Checks, d.Failures
	}
	if err := rows.Err(); err != nil {
		return nil, start, fmt.Errorf("mirror history: %w", err)
	}
	return out, start, nil
}
