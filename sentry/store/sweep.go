package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Mirror states of sentry_mirror_state.
const (
	StateUp   = "up"
	StateDown = "down"
)

// KnownReleases returns every release sentry has a manifest of, oldest
// first.
func (s *Store) KnownReleases(ctx context.Context) ([]Release, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, first_seen, updated_at FROM sentry_releases ORDER BY id`)
	if err != nil {
		return nil, s.wrap("read releases", err)
	}
	rels, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Release, error) {
		var rel Release
		err := r.Scan(&rel.ID, &rel.Name, &rel.FirstSeen, &rel.UpdatedAt)
		return rel, err
	})
	return rels, s.wrap("read releases", err)
}

// ReleaseFiles returns the files of a release's manifest, by path.
func (s *Store) ReleaseFiles(ctx context.Context, releaseID int64) ([]ReleaseFile, error) {
	rows, err := s.pool.Query(ctx, `SELECT path, size, algo, hash FROM sentry_release_files
		WHERE release_id = $1 ORDER BY path`, releaseID)
	if err != nil {
		return nil, s.wrap("read release files", err)
	}
	fs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReleaseFile, error) {
		var f ReleaseFile
		err := r.Scan(&f.Path, &f.Size, &f.Algo, &f.Hash)
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
	// Verified: the last hash matched and nothing since said otherwise.
	Verified bool
	// HashedAt is when the file was last hashed right; zero if never.
	HashedAt           time.Time
	Size               int64 // -1 when unknown
	ETag, LastModified string
	// Rehash: the validators or size changed since the last hash.
	Rehash bool
}

// MirrorFileStates returns the file states of one mirror for the given
// releases.
func (s *Store) MirrorFileStates(ctx context.Context, mirrorID int, releaseIDs []int64) (map[FileKey]FileState, error) {
	rows, err := s.pool.Query(ctx, `SELECT release_id, path, result, (result = 'ok' AND hashed_at IS NOT NULL),
		       coalesce(hashed_at, 'epoch'), coalesce(size, -1), etag, last_modified, rehash
		FROM sentry_file_state WHERE mirror_id = $1 AND release_id = ANY($2)`, mirrorID, releaseIDs)
	if err != nil {
		return nil, s.wrap("read file states", err)
	}
	defer rows.Close()
	out := map[FileKey]FileState{}
	for rows.Next() {
		var k FileKey
		var f FileState
		if err := rows.Scan(&k.ReleaseID, &k.Path, &f.Result, &f.Verified, &f.HashedAt, &f.Size, &f.ETag, &f.LastModified, &f.Rehash); err != nil {
			return nil, s.wrap("read file states", err)
		}
		if f.HashedAt.Equal(time.Unix(0, 0)) {
			f.HashedAt = time.Time{}
		}
		out[k] = f
	}
	return out, s.wrap("read file states", rows.Err())
}

// MirrorState is a mirror's state as sweeps see it.
type MirrorState struct {
	MirrorID   int
	State      string // up or down
	Since      time.Time
	FailStreak int
	OkStreak   int
	LastReason string
}

// MirrorStates returns the recorded state of every mirror that has one;
// a mirror without a row is up.
func (s *Store) MirrorStates(ctx context.Context) (map[int]MirrorState, error) {
	rows, err := s.pool.Query(ctx, `SELECT mirror_id, state, since, fail_streak, ok_streak, last_reason FROM sentry_mirror_state`)
	if err != nil {
		return nil, s.wrap("read mirror states", err)
	}
	defer rows.Close()
	out := map[int]MirrorState{}
	for rows.Next() {
		var m MirrorState
		if err := rows.Scan(&m.MirrorID, &m.State, &m.Since, &m.FailStreak, &m.OkStreak, &m.LastReason); err != nil {
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
}

// errJudgedAlready: the mirror's state was written by this run already (a
// judge that stopped half-way is redone by another): nothing to write.
var errJudgedAlready = errors.New("state already written by this run")

func writeState(ctx context.Context, tx pgx.Tx, mirrorID int, u *StateUpdate) error {
	tag, err := tx.Exec(ctx, `
		INSERT INTO sentry_mirror_state AS ms (mirror_id, state, since, fail_streak, ok_streak, last_check, last_reason,
			failing_from, checked_from, run_id)
		VALUES ($1, $2, $3, $4, $5, $3, $6, $7, $8, nullif($9, 0))
		ON CONFLICT (mirror_id) DO UPDATE SET
			state = excluded.state,
			since = CASE WHEN ms.state = excluded.state THEN ms.since ELSE excluded.since END,
			fail_streak = excluded.fail_streak, ok_streak = excluded.ok_streak,
			last_check = excluded.last_check, last_reason = excluded.last_reason,
			failing_from = excluded.failing_from, checked_from = excluded.checked_from, run_id = excluded.run_id
		WHERE ms.run_id IS DISTINCT FROM excluded.run_id OR excluded.run_id IS NULL`,
		mirrorID, u.State, u.At, u.FailStreak, u.OkStreak, u.Reason, nonNil(u.FailingFrom), nonNil(u.CheckedFrom), u.RunID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errJudgedAlready
	}
	if u.From == "" {
		return nil
	}
	_, err = tx.Exec(ctx, `INSERT INTO sentry_state_changes (mirror_id, run_id, at, from_state, to_state, reason)
		VALUES ($1, nullif($2, 0), $3, $4, $5, $6)`, mirrorID, u.RunID, u.At, u.From, u.State, u.Reason)
	return err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
