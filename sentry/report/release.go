package report

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// FileUptake is how far one release file has spread.
type FileUptake struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	// Mirrors counts the mirrors holding the file verified: active and not
	// down, the file's latest check good, its checksum verified.
	Mirrors int `json:"mirrors"`
	// Weighted is the rating-weighted uptake: the sum of the ratings of
	// the active mirrors holding the file, over the sum of the ratings of
	// all active mirrors (nil when every active mirror has rating 0).
	Weighted *float64 `json:"weighted_uptake"`
}

// MirrorUptake is one mirror's progress on a release.
type MirrorUptake struct {
	ID     int    `json:"id"`
	Name   string `json:"name"`
	Rating int    `json:"rating"`
	Active bool   `json:"active"`
	// Verified counts the release files verified on the mirror at least
	// once since the release's first prime; Holding those it holds
	// verified now.
	Verified int `json:"files_verified"`
	Holding  int `json:"files_holding"`
	// Sampled counts the files of Holding whose last verification read
	// some of their blocks only (verify.mode sampled): not hashed in full
	// since, until the next deep sweep hashes them.
	Sampled int `json:"files_sampled"`
	// VerifiedAt is when the last of the release's files was first
	// verified there (nil until every file was), and Seconds the time from
	// the release's first prime to then.
	VerifiedAt *time.Time `json:"verified_at"`
	Seconds    *float64   `json:"seconds_to_verified"`
}

// UptakePoint is a step of the uptake chart: at At, Mirrors mirrors had
// verified every file of the release, Weighted being their share of the
// active mirrors' ratings.
type UptakePoint struct {
	At       time.Time `json:"at"`
	Mirrors  int       `json:"mirrors"`
	Weighted *float64  `json:"weighted_uptake"`
}

// Signature is who signed a release's manifest (releases.signature), as
// sentry verified it when it recorded the manifest.
type Signature struct {
	// Fingerprint is the primary key's; SigningKey the subkey's, when a
	// subkey signed.
	Fingerprint string    `json:"fingerprint"`
	SigningKey  string    `json:"signing_key,omitempty"`
	UserID      string    `json:"user_id"`
	SignedAt    time.Time `json:"signed_at"`
}

// Release is the uptake report of one release.
type Release struct {
	Name       string     `json:"release"`
	Files      int        `json:"files"`
	TotalBytes int64      `json:"total_bytes"`
	FirstPrime *time.Time `json:"first_prime"`
	// Signature is who signed the recorded manifest; nil when it was
	// recorded without a signature.
	Signature *Signature `json:"signature"`
	// ActiveMirrors and RatingTotal describe the active mirrors uptake is
	// measured against.
	ActiveMirrors int `json:"active_mirrors"`
	RatingTotal   int `json:"rating_total"`
	// Complete counts the mirrors holding every file verified now (active
	// and not down); Weighted is their rating-weighted share.
	Complete  int            `json:"mirrors_complete"`
	Weighted  *float64       `json:"weighted_uptake"`
	FileList  []FileUptake   `json:"files_uptake"`
	Mirrors   []MirrorUptake `json:"mirrors"`
	OverTime  []UptakePoint  `json:"over_time"`
	Truncated bool           `json:"files_truncated"`
}

// Release returns the uptake report of the release named name.
func (r *Reporter) Release(ctx context.Context, name string) (*Release, error) {
	out := &Release{Name: name, FileList: []FileUptake{}, Mirrors: []MirrorUptake{}, OverTime: []UptakePoint{}}
	err := pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var id int64
		var sig Signature
		var signedAt *time.Time
		err := tx.QueryRow(ctx, `
			SELECT r.id, r.file_count, r.total_bytes,
			       (SELECT min(started_at) FROM sentry_runs WHERE kind = 'prime' AND release_id = r.id),
			       (SELECT count(*) FROM mirror_mirrors WHERE active),
			       (SELECT coalesce(sum(rating), 0) FROM mirror_mirrors WHERE active),
			       r.signer_fingerprint, r.signer_key, r.signer_uid, r.signed_at
			FROM sentry_releases r WHERE r.name = $1`, name).
			Scan(&id, &out.Files, &out.TotalBytes, &out.FirstPrime, &out.ActiveMirrors, &out.RatingTotal,
				&sig.Fingerprint, &sig.SigningKey, &sig.UserID, &signedAt)
		if err == nil && sig.Fingerprint != "" {
			if signedAt != nil {
				sig.SignedAt = signedAt.UTC()
			}
			out.Signature = &sig
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("release %q: %w (sentry knows a release once it primed it)", name, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if err := r.releaseFiles(ctx, tx, id, out); err != nil {
			return err
		}
		return r.releaseMirrors(ctx, tx, id, out)
	})
	if err != nil {
		return nil, fmt.Errorf("uptake of release %s: %w", name, err)
	}
	return out, nil
}

// holdingSQL selects the (mirror, path) pairs of release $1 that mirrors
// hold verified now: the mirror active (the admin's switch) and not down
// (the bouncer sends nobody to a down mirror), the file's latest check good
// and its checksum verified.
const holdingSQL = `
	SELECT fs.mirror_id, fs.path, m.rating, fs.verified_by FROM sentry_file_state fs
	JOIN mirror_mirrors m ON m.id = fs.mirror_id AND m.active
	LEFT JOIN sentry_mirror_state ms ON ms.mirror_id = m.id
	WHERE fs.release_id = $1 AND fs.result IN ` + successSQL + ` AND fs.verified_at IS NOT NULL
	  AND coalesce(ms.state, 'up') <> 'down'`

func (r *Reporter) releaseFiles(ctx context.Context, tx pgx.Tx, id int64, out *Release) error {
	rows, err := tx.Query(ctx, `
		WITH holding AS (`+holdingSQL+`)
		SELECT f.path, f.size, count(h.mirror_id), coalesce(sum(h.rating), 0)
		FROM sentry_release_files f
		LEFT JOIN holding h ON h.path = f.path
		WHERE f.release_id = $1
		GROUP BY f.path, f.size ORDER BY f.path LIMIT $2`, id, maxReleaseFiles+1)
	if err != nil {
		return err
	}
	for rows.Next() {
		var f FileUptake
		var ratings int
		if err := rows.Scan(&f.Path, &f.Size, &f.Mirrors, &ratings); err != nil {
			rows.Close()
			return err
		}
		f.Weighted = share(ratings, out.RatingTotal)
		out.FileList = append(out.FileList, f)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(out.FileList) > maxReleaseFiles {
		out.FileList, out.Truncated = out.FileList[:maxReleaseFiles], true
	}
	return nil
}

func (r *Reporter) releaseMirrors(ctx context.Context, tx pgx.Tx, id int64, out *Release) error {
	// first: each (mirror, file)'s first verification since the first
	// prime; done: when a mirror had verified all of them.
	rows, err := tx.Query(ctx, `
		WITH first AS (
			SELECT c.mirror_id, c.path, min(c.checked_at) AS at
			FROM sentry_checks c
			WHERE c.release_id = $1 AND c.result = 'ok' AND (c.hashed OR c.sample_blocks IS NOT NULL)
			  AND c.checked_at >= coalesce($2::timestamptz, '-infinity')
			  AND c.path IN (SELECT path FROM sentry_release_files WHERE release_id = $1)
			GROUP BY c.mirror_id, c.path
		), per AS (
			SELECT mirror_id, count(*) AS files, max(at) AS last FROM first GROUP BY mirror_id
		), holding AS (
			SELECT mirror_id, count(*) AS files, count(*) FILTER (WHERE verified_by = 'sampled') AS sampled
			FROM (`+holdingSQL+`) h GROUP BY mirror_id
		)
		SELECT m.id, m.name, m.rating, m.active, coalesce(per.files, 0), coalesce(holding.files, 0),
		       coalesce(holding.sampled, 0), CASE WHEN per.files = $3 THEN per.last END
		FROM mirror_mirrors m
		LEFT JOIN per ON per.mirror_id = m.id
		LEFT JOIN holding ON holding.mirror_id = m.id
		WHERE m.active OR per.mirror_id IS NOT NULL
		ORDER BY m.name`, id, out.FirstPrime, out.Files)
	if err != nil {
		return err
	}
	completeRatings := 0
	for rows.Next() {
		var m MirrorUptake
		if err := rows.Scan(&m.ID, &m.Name, &m.Rating, &m.Active, &m.Verified, &m.Holding, &m.Sampled, &m.VerifiedAt); err != nil {
			rows.Close()
			return err
		}
		if m.VerifiedAt != nil && out.FirstPrime != nil {
			s := m.VerifiedAt.Sub(*out.FirstPrime).Seconds()
			m.Seconds = &s
		}
		if m.Active && out.Files > 0 && m.Holding == out.Files {
			out.Complete++
			completeRatings += m.Rating
		}
		out.Mirrors = append(out.Mirrors, m)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	out.Weighted = share(completeRatings, out.RatingTotal)

	// The uptake chart: the active mirrors that verified the whole
	// release, cumulated in the order they got there.
	var done []MirrorUptake
	for _, m := range out.Mirrors {
		if m.Active && m.VerifiedAt != nil {
			done = append(done, m)
		}
	}
	sort.SliceStable(done, func(i, j int) bool { return done[i].VerifiedAt.Before(*done[j].VerifiedAt) })
	ratings := 0
	for i, m := range done {
		ratings += m.Rating
		out.OverTime = append(out.OverTime, UptakePoint{At: *m.VerifiedAt, Mirrors: i + 1, Weighted: share(ratings, out.RatingTotal)})
	}
	return nil
}

func share(part, total int) *float64 {
	if total <= 0 {
		return nil
	}
	v := float64(part) / float64(total)
	return &v
}

// Releases lists the releases sentry knows, newest first.
func (r *Reporter) Releases(ctx context.Context) ([]string, error) {
	rows, err := r.pool.Query(ctx, `SELECT name FROM sentry_releases ORDER BY first_seen DESC, id DESC LIMIT 200`)
	if err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	return names, nil
}
