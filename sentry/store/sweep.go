package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/decide"
)

// Mirror states of sentry_mirror_state.
const (
	StateUp   = decide.Up
	StateDown = decide.Down
)

// KnownReleases returns every release sentry has a manifest of whose
// master copy was found good (master_state 'ok': not one a prime is still
// reading, nor one whose master copy is wrong), oldest first.
func (s *Store) KnownReleases(ctx context.Context) ([]Release, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+releaseColumns+` FROM sentry_releases WHERE master_state = 'ok' ORDER BY id`)
	if err != nil {
		return nil, s.wrap("read releases", err)
	}
	rels, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Release, error) { return scanRelease(r) })
	return rels, s.wrap("read releases", err)
}

// ReleaseFiles returns the files of a release's manifest, by path.
func (s *Store) ReleaseFiles(ctx context.Context, releaseID int64) ([]ReleaseFile, error) {
	rows, err := s.pool.Query(ctx, `SELECT path, size, algo, hash, coalesce(previous_hash, '') FROM sentry_release_files
		WHERE release_id = $1 ORDER BY path`, releaseID)
	if err != nil {
		return nil, s.wrap("read release files", err)
	}
	fs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReleaseFile, error) {
		var f ReleaseFile
		err := r.Scan(&f.Path, &f.Size, &f.Algo, &f.Hash, &f.PreviousHash)
		return f, err
	})
	return fs, s.wrap("read release files", err)
}

// FileKey names a release file.
type FileKey struct {
	ReleaseID int64
	Path      string
}

// FileState is what sentry last knew of a file on a mirror.
type FileState struct {
	Result string
	// Verified: the last verification of its bytes (a full hash, or a
	// sample of blocks) matched, nothing since said otherwise, and it was
	// after the mirror was last suspended (down, in maintenance, or
	// switched off by the admin: sentry_mirror_state.suspended_at): the
	// rule of a returning mirror, verifiedSince.
	Verified bool
	// Void: the last verification matched, but not after the mirror was
	// suspended (verifiedBefore): what the mirror held then says nothing
	// of what it holds now.
	Void bool
	// HashedAt is when the file was last hashed right in full; zero if
	// never (a file only ever verified by sampling was never hashed).
	HashedAt           time.Time
	Size               int64 // -1 when unknown
	ETag, LastModified string
	// Rehash: the validators or size changed since the last hash.
	Rehash bool
	// Listed is what the last rsync listing said of the file ("" when
	// none did).
	Listed string
	// FailedOver is the address family the file fails over alone while
	// another family of the mirror serves it right ("" for none: it is
	// failing over every family, or not at all). Then Result is that
	// family's failure, and the validators, size, HashedAt and
	// VerifiedElsewhere are what the other families serve.
	FailedOver string
	// VerifiedElsewhere is Verified over the families that serve it
	// right, when it fails over one alone (FailedOver); else Verified.
	VerifiedElsewhere bool
}

// The rule of a returning mirror (docs/CONTRACTS.md, section 2,
// "Returning mirrors": a mirror is offered again only for files verified
// since its offer was suspended), in SQL over a file state (fs) and its
// mirror's state (ms, left-joined; suspended_at NULL: not suspended, or
// its return complete). This is the rule's one home: sweeps read it
// (MirrorFileStates: FileState.Verified and Void), and so does a prime's
// resume (VerifiedFiles).
//
// "Since" is strictly after: a verification made at the very instant of
// the suspension is not since it. A sweep's judgement, which suspends a
// mirror it finds down, comes after the checks it judges, so a check
// stamped with the same instant was made before the mirror went away.
// decide.RehashOnReturn, which picks the files a returning mirror must
// have hashed again, draws the same line.
const (
	// verifiedSince: the last verification matched, after the suspension.
	verifiedSince = `(fs.result = 'ok' AND fs.verified_at IS NOT NULL AND (ms.suspended_at IS NULL OR fs.verified_at > ms.suspended_at))`
	// verifiedBefore: the last verification matched, but not after the
	// suspension (void).
	verifiedBefore = `coalesce(fs.result = 'ok' AND fs.verified_at <= ms.suspended_at, false)`
	// verifiedElsewhere: verifiedSince over the families that serve the
	// file right, for a file failing over one family alone (failed_over):
	// its verification is theirs. Only sweeps, which check every family,
	// read it; a prime's resume does not count such a file verified.
	verifiedElsewhere = `((fs.result = 'ok' OR fs.failed_over <> '') AND fs.verified_at IS NOT NULL AND (ms.suspended_at IS NULL OR fs.verified_at > ms.suspended_at))`
)

// MirrorFileStates returns the file states of one mirror for the given
// releases. expect is how many there may be (the releases' files), to
// size the map once; 0 when not known.
func (s *Store) MirrorFileStates(ctx context.Context, mirrorID int, releaseIDs []int64, expect int) (map[FileKey]FileState, error) {
	rows, err := s.pool.Query(ctx, `SELECT release_id, path, result, `+verifiedSince+`, `+verifiedBefore+`,
		       coalesce(hashed_at, 'epoch'), coalesce(size, -1), etag, last_modified, rehash, listed, failed_over, `+verifiedElsewhere+`
		FROM sentry_file_state fs LEFT JOIN sentry_mirror_state ms USING (mirror_id)
		WHERE fs.mirror_id = $1 AND release_id = ANY($2)`, mirrorID, releaseIDs)
	if err != nil {
		return nil, s.wrap("read file states", err)
	}
	defer rows.Close()
	out := make(map[FileKey]FileState, expect)
	// Scanned into the same variables every row (Scan sets every field;
	// the map keeps copies): not three new ones on the heap per row.
	var k FileKey
	var f FileState
	var result pgtype.DriverBytes // one of a few words: not a new string per row
	var failedOver pgtype.DriverBytes
	for rows.Next() {
		if err := rows.Scan(&k.ReleaseID, &k.Path, &result, &f.Verified, &f.Void, &f.HashedAt, &f.Size, &f.ETag, &f.LastModified, &f.Rehash,
			&f.Listed, &failedOver, &f.VerifiedElsewhere); err != nil {
			return nil, s.wrap("read file states", err)
		}
		f.Result = kindWord(result)
		f.FailedOver = familyWord(failedOver)
		if f.HashedAt.Equal(time.Unix(0, 0)) {
			f.HashedAt = time.Time{}
		}
		out[k] = f
	}
	return out, s.wrap("read file states", rows.Err())
}

// kindWords are the check kinds as strings, to read a result column
// without a new string per row.
var kindWords = func() map[string]string {
	m := map[string]string{}
	for _, k := range checks.AllKinds() {
		m[string(k)] = string(k)
	}
	return m
}()

// kindWord is b as a string: the shared one when it is a check kind.
func kindWord(b []byte) string {
	if w, ok := kindWords[string(b)]; ok {
		return w
	}
	return string(b)
}

// familyWord is b, an address family or "", as a string without a new one
// per row.
func familyWord(b []byte) string {
	switch string(b) {
	case "":
		return ""
	case "ipv4":
		return "ipv4"
	case "ipv6":
		return "ipv6"
	}
	return string(b)
}

// MirrorState is a mirror's state as sweeps see it.
type MirrorState struct {
	MirrorID   int
	State      string // up or down
	Since      time.Time
	FailStreak int
	OkStreak   int
	LastReason string
	// RunID is the run that last changed the mirror's state (0: none).
	RunID int64
	// FailingFrom and CheckedFrom are the vantage points of its last
	// sweep (see StateUpdate).
	FailingFrom, CheckedFrom []string
	// BrokenFamilies are the address families it failed over at its last
	// sweep while reached over another; SuspendedAt when its offer was
	// suspended (zero: not suspended); MaintSince, MaintUntil and
	// MaintReason its latest maintenance window (zero: none). Read by the
	// judging (lockState) only.
	BrokenFamilies         []string
	SuspendedAt            time.Time
	MaintSince, MaintUntil time.Time
	MaintReason            string

	fresh bool // lockState created the row: nothing was known
}

// same reports whether u would write what the state holds already.
func (m MirrorState) same(u *StateUpdate) bool {
	return u.From == "" && m.State == u.State && m.FailStreak == u.FailStreak && m.OkStreak == u.OkStreak &&
		sameSet(m.FailingFrom, u.FailingFrom) && sameSet(m.CheckedFrom, u.CheckedFrom) &&
		sameSet(m.BrokenFamilies, u.BrokenFamilies) && !u.Returned
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := make(map[string]bool, len(a))
	for _, v := range a {
		seen[v] = true
	}
	for _, v := range b {
		if !seen[v] {
			return false
		}
	}
	return true
}

// MirrorStates returns the recorded state of every mirror that has one;
// a mirror without a row is up.
func (s *Store) MirrorStates(ctx context.Context) (map[int]MirrorState, error) {
	rows, err := s.pool.Query(ctx, `SELECT mirror_id, state, since, fail_streak, ok_streak, last_reason, coalesce(run_id, 0)
		FROM sentry_mirror_state`)
	if err != nil {
		return nil, s.wrap("read mirror states", err)
	}
	defer rows.Close()
	out := map[int]MirrorState{}
	for rows.Next() {
		var m MirrorState
		if err := rows.Scan(&m.MirrorID, &m.State, &m.Since, &m.FailStreak, &m.OkStreak, &m.LastReason, &m.RunID); err != nil {
			return nil, s.wrap("read mirror states", err)
		}
		out[m.MirrorID] = m
	}
	return out, s.wrap("read mirror states", rows.Err())
}

// StateUpdate is a sweep's verdict on a mirror's state, written with its
// marks.
type StateUpdate struct {
	State      string
	FailStreak int
	OkStreak   int
	At         time.Time
	Reason     string
	// From is the previous state when the state changed, "" otherwise; a
	// change is recorded in sentry_state_changes with At and Reason.
	From  string
	RunID int64
	// FailingFrom and CheckedFrom are the vantage points the mirror failed
	// from in this sweep, and those that checked it.
	FailingFrom, CheckedFrom []string
	// BrokenFamilies are the address families it failed over while
	// reached over another. Returned: the return of a mirror whose offer
	// was suspended is complete (re-verified): suspended_at is cleared.
	BrokenFamilies []string
	Returned       bool

	unchanged bool // the state holds this already: nothing to write
}

// errJudgedAlready: the mirror's state was written by this run already (a
// judge that stopped half-way is redone by another): nothing to write.
var errJudgedAlready = errors.New("state already written by this run")

// lockState reads a mirror's state and locks its row until tx ends (a
// mirror without one is up; its row is created, so that there is one to
// lock).
func lockState(ctx context.Context, tx pgx.Tx, mirrorID int) (MirrorState, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO sentry_mirror_state (mirror_id) VALUES ($1) ON CONFLICT DO NOTHING`, mirrorID)
	if err != nil {
		return MirrorState{}, err
	}
	m := MirrorState{MirrorID: mirrorID, fresh: tag.RowsAffected() == 1}
	var susp, mSince, mUntil *time.Time
	err = tx.QueryRow(ctx, `SELECT s.state, s.since, s.fail_streak, s.ok_streak, s.last_reason, coalesce(s.run_id, 0), s.failing_from,
		       s.checked_from, s.broken_families, s.suspended_at, mw.since, mw.until, coalesce(mw.reason, '')
		FROM sentry_mirror_state s LEFT JOIN sentry_maintenance mw ON mw.mirror_id = s.mirror_id
		WHERE s.mirror_id = $1 FOR UPDATE OF s`, mirrorID).
		Scan(&m.State, &m.Since, &m.FailStreak, &m.OkStreak, &m.LastReason, &m.RunID, &m.FailingFrom, &m.CheckedFrom,
			&m.BrokenFamilies, &susp, &mSince, &mUntil, &m.MaintReason)
	m.SuspendedAt, m.MaintSince, m.MaintUntil = deref(susp), deref(mSince), deref(mUntil)
	return m, err
}

func writeState(ctx context.Context, tx pgx.Tx, mirrorID int, u *StateUpdate) error {
	_, err := tx.Exec(ctx, `
		UPDATE sentry_mirror_state SET state = $2,
			since = CASE WHEN state = $2 AND last_check IS NOT NULL THEN since ELSE $3 END,
			fail_streak = $4, ok_streak = $5, last_check = $3, last_reason = $6,
			failing_from = $7, checked_from = $8, run_id = nullif($9, 0), broken_families = $10,
			suspended_at = CASE WHEN $2 = 'down' AND state <> 'down' THEN $3 WHEN $11 THEN NULL ELSE suspended_at END
		WHERE mirror_id = $1`,
		mirrorID, u.State, u.At, u.FailStreak, u.OkStreak, u.Reason, nonNil(u.FailingFrom), nonNil(u.CheckedFrom), u.RunID,
		nonNil(u.BrokenFamilies), u.Returned)
	if err != nil || u.From == "" {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO sentry_state_changes (mirror_id, run_id, at, from_state, to_state, reason)
		VALUES ($1, nullif($2, 0), $3, $4, $5, $6)`, mirrorID, u.RunID, u.At, u.From, u.State, u.Reason)
	return err
}

// NoteSwitchedOff records the admin's switch (mirror_mirrors.active) as
// sentry sees it now: a mirror newly seen switched off is suspended from
// now on (sentry_mirror_state.suspended_at) and its locations withheld
// (active=false, healthy=false), so that when it is switched on again it
// is offered only for files hashed since — not even before its first
// sweep. Only mirrors whose switch changed are written; it returns how
// many were newly seen off.
//
// sentry sees the switch when runs begin: a mirror switched off and on
// again between two of them is not noticed.
func (s *Store) NoteSwitchedOff(ctx context.Context) (int64, error) {
	var off int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			INSERT INTO sentry_mirror_state AS ms (mirror_id, switched_off, suspended_at)
			SELECT id, true, now() FROM mirror_mirrors WHERE NOT active ORDER BY id
			ON CONFLICT (mirror_id) DO UPDATE SET switched_off = true, suspended_at = now() WHERE NOT ms.switched_off
			RETURNING mirror_id`)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		off = int64(len(ids))
		if len(ids) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE mirror_location_mirror_map SET active = false, healthy = false
				WHERE mirror_id = ANY ($1) AND (active OR healthy)`, ids); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE sentry_mirror_state ms SET switched_off = false FROM mirror_mirrors m
			WHERE m.id = ms.mirror_id AND m.active AND ms.switched_off`)
		return err
	})
	return off, s.wrap("note switched-off mirrors", err)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
