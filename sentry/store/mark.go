package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/sentry/decide"
)

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
	// Locations are upserted into mirror_location_mirror_map (Unjudged
	// ones are left as they are).
	Locations []decide.LocationMark
	// Down: the mirror is judged down: healthy=false on all its rows,
	// not only the locations above.
	Down bool
	// State, when set, is the sweep's verdict on the mirror's state,
	// written in the same transaction.
	State *StateUpdate
	// Fence, when set, is the lease the marks were decided under: they
	// are written only while it is still the writer's (else ErrFenced).
	Fence Fence
	// Covered are the locations of the releases the run covers on the
	// mirror: on a mirror sentry had never verified anything on, those
	// not marked good, missing or withheld are taken off (decide.Vouch,
	// vouch.go). Leave it nil when marks are held back (the guard).
	Covered []int
	// Verified: the run verified the bytes of at least one file on the
	// mirror (the first such marking records the mirror as verified).
	Verified bool
}

// MarkMirror writes one mirror's marks and its sentry_log row in one
// transaction, so that an interrupted run leaves each mirror either wholly
// marked or untouched. mirror_mirrors.active (the admin's switch) is never
// changed. It returns ErrFenced when m.Fence no longer holds.
func (s *Store) MarkMirror(ctx context.Context, m MirrorMarks) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := fenced(ctx, tx, m.Fence); err != nil {
			return err
		}
		return markTx(ctx, tx, m)
	})
	return s.wrapMark(m.MirrorID, err)
}

// JudgeMirror is a sweep's MarkMirror: in one transaction it reads the
// mirror's state (locked, so that two sweeps judged at once count one after
// the other), lets judge decide the marks and the new state from it, and
// writes them: the state only when it changed. When the run that started
// at logDate has judged the mirror already (a judge stopped half-way and
// redone: the mirror has the run's sentry_log row), it writes nothing and
// returns false.
func (s *Store) JudgeMirror(ctx context.Context, mirrorID int, runID int64, logDate time.Time, fence Fence, judge func(prev MirrorState) MirrorMarks) (MirrorMarks, bool, error) {
	var m MirrorMarks
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := fenced(ctx, tx, fence); err != nil {
			return err
		}
		prev, err := lockState(ctx, tx, mirrorID)
		if err != nil {
			return err
		}
		var judged bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sentry_log WHERE mirror_id = $1 AND log_date = $2)`,
			mirrorID, logDate).Scan(&judged); err != nil {
			return err
		}
		if judged {
			return errJudgedAlready
		}
		m = judge(prev)
		m.MirrorID, m.Fence, m.LogDate = mirrorID, fence, logDate
		if m.State != nil {
			m.State.RunID = runID
			m.State.unchanged = !prev.fresh && prev.same(m.State)
		}
		return markTx(ctx, tx, m)
	})
	if errors.Is(err, errJudgedAlready) {
		return MirrorMarks{}, false, nil
	}
	if err != nil {
		return MirrorMarks{}, false, s.wrapMark(mirrorID, err)
	}
	return m, true, nil
}

func (s *Store) wrapMark(mirrorID int, err error) error {
	if errors.Is(err, ErrFenced) {
		return fmt.Errorf("mark mirror %d: %w", mirrorID, ErrFenced)
	}
	return s.wrap(fmt.Sprintf("mark mirror %d", mirrorID), err)
}

func markTx(ctx context.Context, tx pgx.Tx, m MirrorMarks) error {
	if err := vouch(ctx, tx, &m); err != nil {
		return err
	}
	// Definite marks set both flags; trouble leaves active as it was (a
	// new row starts inactive: sentry has not seen the file there yet).
	var setLocs, troubleLocs, unvouchedLocs []int32
	var setActive []bool
	for _, l := range m.Locations {
		switch l.Mark {
		case decide.Unvouched:
			unvouchedLocs = append(unvouchedLocs, int32(l.LocationID))
		case decide.Good, decide.Missing, decide.Withheld:
			setLocs = append(setLocs, int32(l.LocationID))
			setActive = append(setActive, l.Mark == decide.Good)
		case decide.Trouble:
			troubleLocs = append(troubleLocs, int32(l.LocationID))
		case decide.Unjudged:
		default:
			return fmt.Errorf("location %d has no mark", l.LocationID)
		}
	}
	if m.State != nil && !m.State.unchanged {
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
			ON CONFLICT (location_id, mirror_id) DO UPDATE SET active = excluded.active, healthy = excluded.healthy
			WHERE (mirror_location_mirror_map.active, mirror_location_mirror_map.healthy) IS DISTINCT FROM (excluded.active, excluded.healthy)`,
			m.MirrorID, setLocs, setActive); err != nil {
			return err
		}
	}
	if len(troubleLocs) > 0 {
		if _, err := tx.Exec(ctx, `
			INSERT INTO mirror_location_mirror_map (location_id, mirror_id, active, healthy)
			SELECT l, $1, false, false FROM unnest($2::int[]) AS u(l) ORDER BY l
			ON CONFLICT (location_id, mirror_id) DO UPDATE SET healthy = false WHERE mirror_location_mirror_map.healthy`,
			m.MirrorID, troubleLocs); err != nil {
			return err
		}
	}
	reason := m.Reason
	if n, err := unvouch(ctx, tx, m.MirrorID, unvouchedLocs); err != nil {
		return err
	} else if n > 0 {
		reason += unvouchedReason(n)
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO sentry_log (log_date, check_time, mirror_id, mirror_active, mirror_rating, reason)
		VALUES ($1, now(), $2, $3, $4, $5)
		ON CONFLICT (mirror_id, log_date) DO UPDATE SET check_time = now(),
			mirror_active = excluded.mirror_active, mirror_rating = excluded.mirror_rating, reason = excluded.reason`,
		m.LogDate, m.MirrorID, m.Up, m.Rating, reason)
	return err
}

// Withdrawals are what a run learnt of locations from their manifests.
type Withdrawals struct {
	// Withdrawn are locations whose files left their release's manifest:
	// no mirror can hold them. They are off every mirror (active=false,
	// healthy=false) and recorded as withdrawn (sentry_withdrawn_locations),
	// so that no view counts them against a mirror.
	Withdrawn []int
	// Respun are locations of files whose size or hash the manifest
	// changed: off every mirror until verified there again.
	Respun []int
	// Resolved are locations that map onto their manifest: withdrawn no
	// more, if they were.
	Resolved []int
}

// Withdraw writes w (docs/CONTRACTS.md, section 2): only rows that change
// are written. It returns how many map rows it took off.
func (s *Store) Withdraw(ctx context.Context, w Withdrawals) (int64, error) {
	if len(w.Withdrawn)+len(w.Respun)+len(w.Resolved) == 0 {
		return 0, nil
	}
	var off int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sentry_withdrawn_locations WHERE location_id = ANY ($1)`, w.Resolved); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sentry_withdrawn_locations (location_id)
			SELECT DISTINCT unnest($1::int[]) ORDER BY 1 ON CONFLICT DO NOTHING`, w.Withdrawn); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE mirror_location_mirror_map SET active = false, healthy = false
			WHERE location_id = ANY ($1) AND (active OR healthy)`, append(w.Withdrawn[:len(w.Withdrawn):len(w.Withdrawn)], w.Respun...))
		off = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, s.wrap("withdraw locations", err)
	}
	return off, nil
}

// OffLocationsSQL counts, per mirror, the locations of active products
// whose row is off (not active, or not healthy) — withdrawn locations
// aside: off on every mirror, they say nothing of one — and names the
// first ones: what makes an up mirror degraded. Every view uses it.
const OffLocationsSQL = `
	SELECT lmm.mirror_id, count(*) AS n, (array_agg(l.path ORDER BY l.path))[1:5] AS paths
	FROM mirror_location_mirror_map lmm
	JOIN mirror_locations l ON l.id = lmm.location_id
	JOIN mirror_products p ON p.id = l.product_id AND p.active
	WHERE NOT (lmm.active AND lmm.healthy)
	  AND NOT EXISTS (SELECT 1 FROM sentry_withdrawn_locations w WHERE w.location_id = l.id)
	GROUP BY lmm.mirror_id`

// LocationsOff are the locations off on a mirror (OffLocationsSQL).
type LocationsOff struct {
	Count int
	// First names the first ones by path (at most 5).
	First []string
}

// OffLocations returns the locations off on each mirror that has any.
func (s *Store) OffLocations(ctx context.Context) (map[int]LocationsOff, error) {
	rows, err := s.pool.Query(ctx, OffLocationsSQL)
	if err != nil {
		return nil, s.wrap("read locations off", err)
	}
	defer rows.Close()
	out := map[int]LocationsOff{}
	for rows.Next() {
		var id int
		var o LocationsOff
		if err := rows.Scan(&id, &o.Count, &o.First); err != nil {
			return nil, s.wrap("read locations off", err)
		}
		out[id] = o
	}
	return out, s.wrap("read locations off", rows.Err())
}
