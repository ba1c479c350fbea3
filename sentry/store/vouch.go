package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/sentry/decide"
)

// What sentry has vouched for on a mirror (DESIGN section 2: active=true
// is a promise). A mirror is verified once sentry has verified the bytes
// of one file there (sentry_mirror_verified, migration 0015); until then,
// rows it finds active on the mirror were left by an earlier checker, and
// the marking of every run takes them off (decide.Vouch).

// vouchLockClass is the first key of the advisory lock a marking holds on
// its mirror while it reads and records whether the mirror was verified
// (the second key is the mirror's id): a prime's marking and a sweep's
// judgement of the same mirror decide one after the other.
const vouchLockClass int32 = 0x73656e74 // "sent"

// vouch applies decide.Vouch to m inside its marking's transaction: it
// reads whether m's mirror was verified before, replaces m's marks, and
// records the mirror as verified when m says the run verified a file
// there and it was not before. Only a mirror's first verification writes.
func vouch(ctx context.Context, tx pgx.Tx, m *MirrorMarks) error {
	if len(m.Covered) == 0 && !m.Verified {
		return nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, vouchLockClass, int32(m.MirrorID)); err != nil {
		return err
	}
	var before bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sentry_mirror_verified WHERE mirror_id = $1)`,
		m.MirrorID).Scan(&before); err != nil {
		return err
	}
	m.Locations = decide.Vouch(before, m.Covered, m.Locations)
	if m.Verified && !before {
		if _, err := tx.Exec(ctx, `INSERT INTO sentry_mirror_verified (mirror_id, first_verified_at) VALUES ($1, now())
			ON CONFLICT (mirror_id) DO NOTHING`, m.MirrorID); err != nil {
			return err
		}
	}
	return nil
}

// unvouch takes off the rows of locs on a mirror that are not off already
// (decide.Unvouched): no row is created. It returns how many it took off.
func unvouch(ctx context.Context, tx pgx.Tx, mirrorID int, locs []int32) (int64, error) {
	if len(locs) == 0 {
		return 0, nil
	}
	// Rows locked in location order, as every marking takes them.
	tag, err := tx.Exec(ctx, `UPDATE mirror_location_mirror_map lmm SET active = false, healthy = false
		FROM (SELECT id FROM mirror_location_mirror_map
		      WHERE mirror_id = $1 AND location_id = ANY ($2) AND (active OR healthy)
		      ORDER BY location_id FOR UPDATE) o
		WHERE lmm.id = o.id`, mirrorID, locs)
	return tag.RowsAffected(), err
}

// unvouchedReason is what a mirror's sentry_log row adds when its marking
// took n inherited rows off.
func unvouchedReason(n int64) string {
	s := "s"
	if n == 1 {
		s = ""
	}
	return fmt.Sprintf("; %d row%s left active by an earlier checker taken off: %s", n, s, decide.NeverVerified)
}

// VerifiedMirrors returns when each mirror sentry has verified a file on
// was first verified; a mirror not in it was never verified by sentry.
func (s *Store) VerifiedMirrors(ctx context.Context) (map[int]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT mirror_id, first_verified_at FROM sentry_mirror_verified`)
	if err != nil {
		return nil, s.wrap("read verified mirrors", err)
	}
	defer rows.Close()
	out := map[int]time.Time{}
	for rows.Next() {
		var id int
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return nil, s.wrap("read verified mirrors", err)
		}
		out[id] = at
	}
	return out, s.wrap("read verified mirrors", rows.Err())
}
