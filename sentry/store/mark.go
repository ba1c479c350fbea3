package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Mark is what sentry found for one location on one mirror, as DESIGN.md
// section 2 maps it onto mirror_location_mirror_map.
type Mark int

const (
	// MarkGood: every file present, size and checksum right:
	// active=true, healthy=true.
	MarkGood Mark = iota + 1
	// MarkMissing: a file missing or wrong: active=false, healthy=false.
	MarkMissing
	// MarkTrouble: transient trouble: active unchanged, healthy=false.
	MarkTrouble
)

func (m Mark) String() string {
	switch m {
	case MarkGood:
		return "good"
	case MarkMissing:
		return "missing"
	case MarkTrouble:
		return "trouble"
	}
	return fmt.Sprintf("Mark(%d)", int(m))
}

// LocationMark is the mark of one location.
type LocationMark struct {
	LocationID int
	Mark       Mark
}

// MirrorMarks is everything a run writes about one mirror.
type MirrorMarks struct {
	MirrorID int
	Rating   int
	// LogDate is the run's start: sentry_log keeps one row per mirror per
	// run, keyed by it.
	LogDate time.Time
	// Up is what sentry_log.mirror_active records: whether the mirror
	// answered as a mirror in this run.
	Up bool
	// Reason is the human-readable sentry_log reason.
	Reason string
	// Locations are upserted into mirror_location_mirror_map.
	Locations []LocationMark
	// Down: the mirror is judged down: healthy=false on all its rows,
	// not only the locations above.
	Down bool
	// State, when set, is the sweep's verdict on the mirror's state,
	// written in the same transaction.
	State *StateUpdate
}

// MarkMirror writes one mirror's marks and its sentry_log row in one
// transaction, so that an interrupted run leaves each mirror either wholly
// marked or untouched. mirror_mirrors.active (the admin's switch) is never
// changed.
func (s *Store) MarkMirror(ctx context.Context, m MirrorMarks) error {
	// Definite marks set both flags; trouble leaves active as it was (a
	// new row starts inactive: sentry has not seen the file there yet).
	var setLocs, troubleLocs []int32
	var setActive []bool
	for _, l := range m.Locations {
		switch l.Mark {
		case MarkGood, MarkMissing:
			setLocs = append(setLocs, int32(l.LocationID))
			setActive = append(setActive, l.Mark == MarkGood)
		case MarkTrouble:
			troubleLocs = append(troubleLocs, int32(l.LocationID))
		default:
			return fmt.Errorf("mark mirror %d: location %d has no mark", m.MirrorID, l.LocationID)
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if m.State != nil {
			if err := writeState(ctx, tx, m.MirrorID, m.State); err != nil {
				return err
			}
		}
		if m.Down {
			if _, err := tx.Exec(ctx, `UPDATE mirror_location_mirror_map SET healthy = false
				WHERE mirror_id = $1 AND healthy`, m.MirrorID); err != nil {
				return err
			}
		}
		// Rows are upserted in location order so that concurrent markers
		// (several sentries) take row locks in one order.
		if len(setLocs) > 0 {
			if _, err := tx.Exec(ctx, `
				INSERT INTO mirror_location_mirror_map (location_id, mirror_id, active, healthy)
				SELECT l, $1, a, a FROM unnest($2::int[], $3::bool[]) AS u(l, a) ORDER BY l
				ON CONFLICT (location_id, mirror_id) DO UPDATE SET active = excluded.active, healthy = excluded.healthy`,
				m.MirrorID, setLocs, setActive); err != nil {
				return err
			}
		}
		if len(troubleLocs) > 0 {
			if _, err := tx.Exec(ctx, `
				INSERT INTO mirror_location_mirror_map (location_id, mirror_id, active, healthy)
				SELECT l, $1, false, false FROM unnest($2::int[]) AS u(l) ORDER BY l
				ON CONFLICT (location_id, mirror_id) DO UPDATE SET healthy = false`,
				m.MirrorID, troubleLocs); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO sentry_log (log_date, check_time, mirror_id, mirror_active, mirror_rating, reason)
			VALUES ($1, now(), $2, $3, $4, $5)
			ON CONFLICT (mirror_id, log_date) DO UPDATE SET check_time = now(),
				mirror_active = excluded.mirror_active, mirror_rating = excluded.mirror_rating, reason = excluded.reason`,
			m.LogDate, m.MirrorID, m.Up, m.Rating, m.Reason)
		return err
	})
	if errors.Is(err, errJudgedAlready) {
		return nil // this run marked the mirror before: all of it, in one transaction
	}
	return s.wrap(fmt.Sprintf("mark mirror %d", m.MirrorID), err)
}
