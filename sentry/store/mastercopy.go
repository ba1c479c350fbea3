package store

import (
	"context"
	"time"
)

// The master's copy of a release, as sentry checked it against the
// manifest (sentry_releases.master_state): a prime primes the mirrors
// while it reads it, and records the verdict once every file was read.
const (
	// MasterPending: the master's copy is being read (sweeps leave the
	// release alone).
	MasterPending = "pending"
	// MasterOK: every file of the master's copy is the manifest's.
	MasterOK = "ok"
	// MasterFailed: a file of the master's copy is not the manifest's
	// (master_detail says which): the release is unusable, and nothing
	// was marked for it.
	MasterFailed = "failed"
)

// SetMasterState records the verdict on release releaseID's master copy
// for the manifest of SHA-256 manifestSHA256 (a manifest changed since is
// left alone: its own prime judges it).
func (s *Store) SetMasterState(ctx context.Context, releaseID int64, manifestSHA256, state, detail string) error {
	_, err := s.pool.Exec(ctx, `UPDATE sentry_releases SET master_state = $3, master_detail = $4
		WHERE id = $1 AND manifest_sha256 = $2`, releaseID, manifestSHA256, state, detail)
	return s.wrap("record the master's copy's verdict", err)
}

// MasterStatus is what a sentry working on a prime it did not plan reads
// of the release's master copy while it is being read.
type MasterStatus struct {
	// State and Detail are the release's master_state and master_detail;
	// Changed is true when its manifest is no longer the one asked about.
	State, Detail string
	Changed       bool
	// RunRunning: the prime is still running. ReaderAlive: the sentry that
	// planned it (and reads the master's copy) was seen within the lease.
	// RowsOpen: work rows of the prime are not done yet (none: it is
	// being judged, and no verdict will come any more).
	RunRunning, ReaderAlive, RowsOpen bool
}

// MasterStatus reads the state of release releaseID's master copy for
// the manifest of SHA-256 manifestSHA256, and whether run runID and the
// sentry that started it (seen within lease) are still there.
func (s *Store) MasterStatus(ctx context.Context, releaseID int64, manifestSHA256 string, runID int64, lease time.Duration) (MasterStatus, error) {
	var st MasterStatus
	var sha string
	err := s.pool.QueryRow(ctx, `
		SELECT rel.master_state, rel.master_detail, rel.manifest_sha256, coalesce(r.outcome = 'running', false),
		       coalesce(i.stopped_at IS NULL AND i.last_seen > now() - $3::interval, false),
		       EXISTS (SELECT 1 FROM sentry_work w WHERE w.run_id = $2 AND NOT w.done)
		FROM sentry_releases rel
		LEFT JOIN sentry_runs r ON r.id = $2
		LEFT JOIN sentry_instances i ON i.id = r.instance
		WHERE rel.id = $1`, releaseID, runID, lease).
		Scan(&st.State, &st.Detail, &sha, &st.RunRunning, &st.ReaderAlive, &st.RowsOpen)
	// A run planned by a sentry before the manifest was part of its
	// parameters names none: the release's is its.
	st.Changed = manifestSHA256 != "" && sha != manifestSHA256
	return st, s.wrap("read the state of the master's copy", err)
}
