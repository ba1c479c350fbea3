package report

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/sentry/internal/humanize"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// A release's capacity is the share of the downloads the redirector can
// send to mirrors holding the whole release: the summed ratings of the
// eligible mirrors that verified every file of it, over the summed
// ratings of every eligible mirror. Eligible: a mirror the deployed
// redirector can offer for one of the release's products (its admin
// switch on, a region row, the product's scheme: store.OfferableSQL);
// a release primed before sentry recorded its products counts the
// mirrors it can offer under either scheme. How fast a release gains
// capacity is the time from its first prime's start to the moment the
// mirrors holding it reach each share (CapacityShares): computed from
// the checks recorded, a mirror counting from the first verification of
// the last of its files since the first prime.

// CapacityShares are the shares of capacity whose time a report gives:
// half, nine tenths and all of the eligible rating.
var CapacityShares = []float64{0.5, 0.9, 1}

// Capacity is how fast a release reached its eligible capacity.
type Capacity struct {
	// StartedAt is when the release's first prime started (nil: never
	// primed).
	StartedAt *time.Time `json:"started_at"`
	// EligibleMirrors and EligibleRating are the mirrors the redirector can
	// offer for the release's products, and their summed ratings.
	EligibleMirrors int `json:"eligible_mirrors"`
	EligibleRating  int `json:"eligible_rating"`
	// Complete counts the eligible mirrors that have verified every file
	// since the first prime (whether they hold them still or not: the
	// release's uptake says what is held now), and Share is their part of
	// EligibleRating (nil when it is 0): the share of capacity reached.
	Complete int      `json:"mirrors_complete"`
	Share    *float64 `json:"share"`
	// Times gives, for each of CapacityShares, when it was reached.
	Times []CapacityTime `json:"times"`
}

// CapacityTime is when a share of a release's eligible capacity held
// every file: Seconds from the first prime's start, At the moment (both
// nil while not reached).
type CapacityTime struct {
	Share   float64    `json:"share"`
	Seconds *float64   `json:"seconds"`
	At      *time.Time `json:"at"`
}

// Percent is the share as people read it: "90%".
func (t CapacityTime) Percent() string { return percent(&t.Share) }

// Reached is one eligible mirror's part of a release's capacity: its
// rating, and when it held every file verified (zero: not yet).
type Reached struct {
	Rating int
	At     time.Time
}

// CapacityTimes decides, from the eligible mirrors, when each of shares
// of their summed ratings (negative ratings count as 0) held the release:
// the first moment the mirrors that got there by then reach the share.
// Seconds count from start. Shares above what was reached, or any share
// when the summed rating is 0, have no time.
func CapacityTimes(start time.Time, mirrors []Reached, shares []float64) []CapacityTime {
	total := 0
	var done []Reached
	for _, m := range mirrors {
		r := max(m.Rating, 0)
		total += r
		if !m.At.IsZero() {
			done = append(done, Reached{Rating: r, At: m.At})
		}
	}
	slices.SortStableFunc(done, func(a, b Reached) int { return a.At.Compare(b.At) })
	out := make([]CapacityTime, len(shares))
	for i, s := range shares {
		out[i].Share = s
		if total == 0 {
			continue
		}
		// The share is reached when the ratings held reach s × total
		// (compared in integers where s × total is one, so that 0.9 of
		// 10 is 9, not 9.000000000000002).
		need := s * float64(total)
		if r := math.Round(need); math.Abs(need-r) < 1e-9 {
			need = r
		}
		sum := 0
		for _, m := range done {
			sum += m.Rating
			if float64(sum) >= need {
				at := m.At
				secs := at.Sub(start).Seconds()
				out[i].At, out[i].Seconds = &at, &secs
				break
			}
		}
	}
	return out
}

// capacitySQL reads the eligible mirrors of release $1, with their
// ratings and when each held every one of its $3 files, first verified
// since $2 (the first prime).
var capacitySQL = `
	WITH eligible AS (
		SELECT m.id, m.rating FROM mirror_mirrors m JOIN sentry_releases r ON r.id = $1
		WHERE ` + store.ReleaseOfferableSQL("m", "r") + `
	), first AS (
		SELECT c.mirror_id, c.path, min(c.checked_at) AS at
		FROM sentry_checks c
		WHERE c.release_id = $1 AND c.result = 'ok' AND (c.hashed OR c.sample_blocks IS NOT NULL)
		  AND c.checked_at >= $2 AND c.mirror_id IN (SELECT id FROM eligible)
		  AND c.path IN (SELECT path FROM sentry_release_files WHERE release_id = $1)
		GROUP BY c.mirror_id, c.path
	), done AS (
		SELECT mirror_id, max(at) AS at FROM first GROUP BY mirror_id HAVING count(*) = $3
	)
	SELECT e.rating, d.at FROM eligible e LEFT JOIN done d ON d.mirror_id = e.id`

// capacity reads release id's capacity, first primed at start (nil:
// never) with files files.
func capacity(ctx context.Context, q pgx.Tx, id int64, start *time.Time, files int) (*Capacity, error) {
	c := &Capacity{StartedAt: start, Times: []CapacityTime{}}
	if start == nil {
		c.Times = CapacityTimes(time.Time{}, nil, CapacityShares)
		return c, nil
	}
	rows, err := q.Query(ctx, capacitySQL, id, *start, files)
	if err != nil {
		return nil, fmt.Errorf("capacity: %w", err)
	}
	var mirrors []Reached
	held := 0
	for rows.Next() {
		var m Reached
		var at *time.Time
		if err := rows.Scan(&m.Rating, &at); err != nil {
			rows.Close()
			return nil, fmt.Errorf("capacity: %w", err)
		}
		if at != nil {
			m.At = *at
			c.Complete++
			held += max(m.Rating, 0)
		}
		c.EligibleMirrors++
		c.EligibleRating += max(m.Rating, 0)
		mirrors = append(mirrors, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("capacity: %w", err)
	}
	c.Share = share(held, c.EligibleRating)
	c.Times = CapacityTimes(*start, mirrors, CapacityShares)
	return c, nil
}

// ReleaseCapacity is a recent release's capacity, for the metrics.
type ReleaseCapacity struct {
	Release  string
	Capacity *Capacity
}

// RecentCapacity gives the capacity of the releases first primed within
// the last period (at most limit, newest first).
func (r *Reporter) RecentCapacity(ctx context.Context, period time.Duration, limit int) ([]ReleaseCapacity, error) {
	var out []ReleaseCapacity
	err := pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT r.id, r.name, r.file_count, min(p.started_at) AS first
			FROM sentry_releases r JOIN sentry_runs p ON p.release_id = r.id AND p.kind = 'prime'
			GROUP BY r.id HAVING min(p.started_at) > now() - $1::interval
			ORDER BY first DESC LIMIT $2`, period, limit)
		if err != nil {
			return err
		}
		type rel struct {
			id    int64
			name  string
			files int
			first time.Time
		}
		var rels []rel
		for rows.Next() {
			var x rel
			if err := rows.Scan(&x.id, &x.name, &x.files, &x.first); err != nil {
				rows.Close()
				return err
			}
			rels = append(rels, x)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, x := range rels {
			c, err := capacity(ctx, tx, x.id, &x.first, x.files)
			if err != nil {
				return err
			}
			out = append(out, ReleaseCapacity{Release: x.name, Capacity: c})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recent capacity: %w", err)
	}
	return out, nil
}

// capacityLines are the capacity of a release as the table says it, in
// two lines of at most 80 columns:
//
//	eligible: 300 mirrors the redirector can offer, rating 9120; 97% held every file
//	time to capacity: 50% 1m12s, 90% 3m40s, 100% not yet
func capacityLines(c *Capacity) string {
	if c == nil {
		return ""
	}
	var parts []string
	for _, t := range c.Times {
		s := "not yet"
		if t.Seconds != nil {
			s = humanize.Duration(time.Duration(*t.Seconds * float64(time.Second)))
		}
		parts = append(parts, fmt.Sprintf("%s %s", t.Percent(), s))
	}
	return fmt.Sprintf("eligible: %d mirrors the redirector can offer, rating %d; %s held every file\ntime to capacity: %s\n",
		c.EligibleMirrors, c.EligibleRating, percent(c.Share), strings.Join(parts, ", "))
}
