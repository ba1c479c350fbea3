package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReleaseFile is one file of a release's manifest, with its size known.
type ReleaseFile struct {
	Path string // relative to the release directory
	Size int64
	Algo string // "sha256" or "sha512"
	Hash string // lower-case hex
	// PreviousHash is the hash before the manifest last changed the file
	// ("" for none; set by SaveRelease, read by ReleaseFiles).
	PreviousHash string
}

// Release is a release sentry knows the manifest of.
type Release struct {
	ID        int64
	Name      string
	FirstSeen time.Time
	UpdatedAt time.Time
	// Changed is true when SaveRelease stored a new or different manifest;
	// Respun are the paths it already had whose size or hash the new one
	// changed (every mirror's verification of them is void).
	Changed bool
	Respun  []string
	// ManifestETag and ManifestLastModified are the validators the master
	// gave with the manifest, for the next conditional GET.
	ManifestETag, ManifestLastModified string
	// ManifestSHA256 is the digest of the recorded manifest's bytes.
	ManifestSHA256 string
	// Signer is who signed the recorded manifest (zero: recorded
	// without a signature).
	Signer ManifestSigner
}

// ManifestValidators are what the master said of a manifest it sent,
// and who signed it.
type ManifestValidators struct {
	ETag, LastModified string
	// Signer is who signed the manifest, as verified (zero: not signed).
	Signer ManifestSigner
}

// ManifestSigner is who signed a manifest (releases.signature).
type ManifestSigner struct {
	// Fingerprint is the primary key's, SigningKey the subkey's when a
	// subkey signed; UserID the key's primary user id; SignedAt the
	// signature's time.
	Fingerprint, SigningKey, UserID string
	SignedAt                        time.Time
}

// signedAt is s's time for the database: NULL when unsigned.
func (s ManifestSigner) signedAt() *time.Time {
	if s.Fingerprint == "" || s.SignedAt.IsZero() {
		return nil
	}
	return &s.SignedAt
}

// setSignerSQL records who signed release $1's manifest.
const setSignerSQL = `UPDATE sentry_releases SET signer_fingerprint = $2, signer_key = $3, signer_uid = $4, signed_at = $5
	WHERE id = $1 AND (signer_fingerprint, signer_key, signer_uid, signed_at) IS DISTINCT FROM ($2, $3, $4, $5)`

// releaseColumns are the columns scanRelease reads, in its order.
const releaseColumns = `id, name, first_seen, updated_at, manifest_etag, manifest_last_modified, manifest_sha256,
	signer_fingerprint, signer_key, signer_uid, signed_at`

// scanRelease reads a release of releaseColumns.
func scanRelease(row pgx.Row) (Release, error) {
	var rel Release
	var signedAt *time.Time
	err := row.Scan(&rel.ID, &rel.Name, &rel.FirstSeen, &rel.UpdatedAt, &rel.ManifestETag, &rel.ManifestLastModified,
		&rel.ManifestSHA256, &rel.Signer.Fingerprint, &rel.Signer.SigningKey, &rel.Signer.UserID, &signedAt)
	if signedAt != nil {
		rel.Signer.SignedAt = signedAt.UTC()
	}
	return rel, err
}

// ErrNoRelease is returned for a release sentry has no manifest of.
var ErrNoRelease = errors.New("release not known")

// SaveRelease records release name with the files of its manifest, in one
// transaction. When the release is known with the same manifest (by its
// SHA-256), nothing changes but the validators and, when v names one, the
// signer. When the manifest changed (a re-spin), the
// file list is replaced and what sentry knew about files whose size or hash
// changed, or that left the manifest, is forgotten, so that those files are
// verified again; what it knew about unchanged files is kept (resume).
//
// A file whose size or hash changed keeps its previous hash
// (sentry_release_files.previous_hash): a mirror serving it serves the
// previous version. v is recorded for the next conditional GET.
func (s *Store) SaveRelease(ctx context.Context, name, manifestURL, manifestSHA256 string, files []ReleaseFile, v ManifestValidators) (Release, error) {
	var rel Release
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Insert or find, then lock: two first saves at once meet at the
		// unique name instead of failing on it.
		var fresh bool
		err := tx.QueryRow(ctx, `INSERT INTO sentry_releases (name, manifest_url, manifest_sha256, file_count, total_bytes)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING id, first_seen, updated_at`,
			name, manifestURL, manifestSHA256, len(files), totalBytes(files)).Scan(&rel.ID, &rel.FirstSeen, &rel.UpdatedAt)
		switch {
		case err == nil:
			fresh = true
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if !fresh {
			var oldSHA string
			if err := tx.QueryRow(ctx, `SELECT id, manifest_sha256, first_seen, updated_at FROM sentry_releases WHERE name = $1 FOR UPDATE`, name).
				Scan(&rel.ID, &oldSHA, &rel.FirstSeen, &rel.UpdatedAt); err != nil {
				return err
			}
			if oldSHA == manifestSHA256 {
				rel.Name = name
				if _, err := tx.Exec(ctx, setValidatorsSQL, rel.ID, v.ETag, v.LastModified); err != nil {
					return err
				}
				if v.Signer.Fingerprint == "" {
					return nil
				}
				_, err := tx.Exec(ctx, setSignerSQL, rel.ID, v.Signer.Fingerprint, v.Signer.SigningKey, v.Signer.UserID, v.Signer.signedAt())
				return err
			}
			err = tx.QueryRow(ctx, `UPDATE sentry_releases SET manifest_url = $2, manifest_sha256 = $3, file_count = $4,
				total_bytes = $5, updated_at = now(), manifest_etag = $6, manifest_last_modified = $7 WHERE id = $1 RETURNING updated_at`,
				rel.ID, manifestURL, manifestSHA256, len(files), totalBytes(files), v.ETag, v.LastModified).Scan(&rel.UpdatedAt)
			if err != nil {
				return err
			}
		} else if _, err := tx.Exec(ctx, `UPDATE sentry_releases SET manifest_etag = $2, manifest_last_modified = $3 WHERE id = $1`,
			rel.ID, v.ETag, v.LastModified); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, setSignerSQL, rel.ID, v.Signer.Fingerprint, v.Signer.SigningKey, v.Signer.UserID, v.Signer.signedAt()); err != nil {
			return err
		}
		rel.Name = name
		rel.Changed = true
		rel.Signer = v.Signer
		// Replace the file list through a temporary table, so that the
		// state of changed or removed files can be dropped by one join.
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE new_release_files (path text, size bigint, algo text, hash text) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"new_release_files"}, []string{"path", "size", "algo", "hash"},
			pgx.CopyFromSlice(len(files), func(i int) ([]any, error) {
				f := files[i]
				return []any{f.Path, f.Size, f.Algo, f.Hash}, nil
			})); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sentry_file_state fs
			WHERE fs.release_id = $1 AND NOT EXISTS (
				SELECT 1 FROM new_release_files n JOIN sentry_release_files o
				  ON o.release_id = $1 AND o.path = n.path AND o.size = n.size AND o.algo = n.algo AND o.hash = n.hash
				WHERE n.path = fs.path)`, rel.ID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT n.path FROM new_release_files n JOIN sentry_release_files o
			ON o.release_id = $1 AND o.path = n.path WHERE (o.size, o.algo, o.hash) <> (n.size, n.algo, n.hash) ORDER BY 1`, rel.ID)
		if err != nil {
			return err
		}
		if rel.Respun, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE old_release_files ON COMMIT DROP AS
			SELECT path, hash, previous_hash FROM sentry_release_files WHERE release_id = $1`, rel.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sentry_release_files WHERE release_id = $1`, rel.ID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO sentry_release_files (release_id, path, size, algo, hash, previous_hash)
			SELECT $1, n.path, n.size, n.algo, n.hash,
			       CASE WHEN o.hash IS DISTINCT FROM n.hash AND o.hash IS NOT NULL THEN o.hash ELSE o.previous_hash END
			FROM new_release_files n LEFT JOIN old_release_files o ON o.path = n.path`, rel.ID)
		return err
	})
	if err != nil {
		return Release{}, s.wrap(fmt.Sprintf("save release %s", name), err)
	}
	return rel, nil
}

func totalBytes(files []ReleaseFile) int64 {
	var n int64
	for _, f := range files {
		n += f.Size
	}
	return n
}

// setValidatorsSQL records a release's manifest validators ($2, $3),
// writing only when they changed.
const setValidatorsSQL = `UPDATE sentry_releases SET manifest_etag = $2, manifest_last_modified = $3
	WHERE id = $1 AND (manifest_etag, manifest_last_modified) IS DISTINCT FROM ($2, $3)`

// SetManifestValidators records what the master now says of a release's
// manifest whose bytes did not change, for the next conditional GET, and
// who signed it when v names a signer.
func (s *Store) SetManifestValidators(ctx context.Context, releaseID int64, v ManifestValidators) error {
	_, err := s.pool.Exec(ctx, setValidatorsSQL, releaseID, v.ETag, v.LastModified)
	if err == nil && v.Signer.Fingerprint != "" {
		_, err = s.pool.Exec(ctx, setSignerSQL, releaseID, v.Signer.Fingerprint, v.Signer.SigningKey, v.Signer.UserID, v.Signer.signedAt())
	}
	return s.wrap("record the manifest's validators", err)
}

// ReleaseByName returns a known release, or ErrNoRelease.
func (s *Store) ReleaseByName(ctx context.Context, name string) (Release, error) {
	rel, err := scanRelease(s.pool.QueryRow(ctx, `SELECT `+releaseColumns+` FROM sentry_releases WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return Release{}, fmt.Errorf("%w: %s", ErrNoRelease, name)
	}
	return rel, s.wrap("read release "+name, err)
}

// VerifiedFiles returns the paths of release files that mirror holds
// verified (size and checksum, or size and sampled blocks) according to
// earlier checks of this manifest, since the mirror was last suspended
// (verifiedSince): what a resumed prime need not download again.
func (s *Store) VerifiedFiles(ctx context.Context, releaseID int64, mirrorID int) (map[string]bool, error) {
	return s.paths(ctx, "read verified files", `SELECT path FROM sentry_file_state fs LEFT JOIN sentry_mirror_state ms USING (mirror_id)
		WHERE release_id = $1 AND fs.mirror_id = $2 AND `+verifiedSince, releaseID, mirrorID)
}
