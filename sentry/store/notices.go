package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notices are the mails sentry sends, recorded in sentry_notices, one per
// (kind, key) whichever sentry sends it: a state change is mailed once
// across restarts and several sentries.
const (
	NoticeState  = "state"  // key "state-<sentry_state_changes.id>": a mirror went down, or came back
	NoticeTLS    = "tls"    // key "tls-<mirror id>-<fingerprint>": a certificate ends soon
	NoticeDigest = "digest" // key "digest-<UTC date>": the operators' daily digest
)

// Notice is one notice claimed for sending.
type Notice struct {
	Kind, Key string
	MirrorID  int // 0 for the digest
	// Attempts counts the attempts, this one included.
	Attempts int
}

// CreateNotices records the notices owed for what happened within the
// last window, once each: a state change to down, or from down back to
// up, of a mirror with a contact; a certificate warning raised on such a
// mirror. It returns how many it created. (A mirror's maintenance window
// and its return are not mailed: its admin announced them.)
func (s *Store) CreateNotices(ctx context.Context, window time.Duration) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO sentry_notices (kind, key, mirror_id)
			SELECT 'state', 'state-' || sc.id, sc.mirror_id
			FROM sentry_state_changes sc
			JOIN sentry_mirror_settings st ON st.mirror_id = sc.mirror_id AND st.contact IS NOT NULL
			WHERE sc.at > now() - $1::interval
			  AND ((sc.to_state = 'down' AND sc.from_state <> 'maintenance') OR (sc.from_state = 'down' AND sc.to_state = 'up'))
			ORDER BY sc.id
			ON CONFLICT DO NOTHING`, window)
		if err != nil {
			return err
		}
		n += tag.RowsAffected()
		tag, err = tx.Exec(ctx, `
			INSERT INTO sentry_notices (kind, key, mirror_id)
			SELECT 'tls', 'tls-' || t.mirror_id || '-' || t.fingerprint, t.mirror_id
			FROM sentry_mirror_tls t
			JOIN sentry_mirror_settings st ON st.mirror_id = t.mirror_id AND st.contact IS NOT NULL
			WHERE t.warned_at > now() - $1::interval
			ORDER BY t.mirror_id
			ON CONFLICT DO NOTHING`, window)
		if err != nil {
			return err
		}
		n += tag.RowsAffected()
		return nil
	})
	return n, s.wrap("record notices", err)
}

// EnsureNotice records a notice of kind and key unless there is one.
func (s *Store) EnsureNotice(ctx context.Context, kind, key string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sentry_notices (kind, key) VALUES ($1, $2) ON CONFLICT DO NOTHING`, kind, key)
	return s.wrap("record a notice", err)
}

// ClaimNotice claims the next notice due for sending, for lease (no other
// sentry sends it meanwhile); ok false when none is due.
func (s *Store) ClaimNotice(ctx context.Context, by string, lease time.Duration) (Notice, bool, error) {
	var n Notice
	var mirror *int
	err := s.pool.QueryRow(ctx, `
		UPDATE sentry_notices SET claimed_by = $1, claimed_until = now() + $2::interval, attempts = attempts + 1
		WHERE (kind, key) = (
			SELECT kind, key FROM sentry_notices
			WHERE sent_at IS NULL AND gave_up_at IS NULL AND next_at <= now()
			  AND (claimed_until IS NULL OR claimed_until < now())
			ORDER BY next_at, created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING kind, key, mirror_id, attempts`, by, lease).Scan(&n.Kind, &n.Key, &mirror, &n.Attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return Notice{}, false, nil
	}
	if err != nil {
		return Notice{}, false, s.wrap("claim a notice", err)
	}
	if mirror != nil {
		n.MirrorID = *mirror
	}
	return n, true, nil
}

// NoticeSent records that a notice went out.
func (s *Store) NoticeSent(ctx context.Context, n Notice) error {
	_, err := s.pool.Exec(ctx, `UPDATE sentry_notices SET sent_at = now(), claimed_until = NULL, last_error = ''
		WHERE kind = $1 AND key = $2`, n.Kind, n.Key)
	return s.wrap("record a notice sent", err)
}

// NoticeFailed records a failed attempt: the notice is tried again after
// wait, or given up on (giveUp) with why.
func (s *Store) NoticeFailed(ctx context.Context, n Notice, why string, wait time.Duration, giveUp bool) error {
	_, err := s.pool.Exec(ctx, `UPDATE sentry_notices SET claimed_until = NULL, last_error = left($3, 500),
			next_at = now() + $4::interval, gave_up_at = CASE WHEN $5 THEN now() END
		WHERE kind = $1 AND key = $2`, n.Kind, n.Key, why, wait, giveUp)
	return s.wrap("record a notice failed", err)
}

// OpenNotices counts the notices neither sent nor given up on.
func (s *Store) OpenNotices(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM sentry_notices WHERE sent_at IS NULL AND gave_up_at IS NULL`).Scan(&n)
	return n, s.wrap("count notices", err)
}

// NoticeMirror is the mirror a notice is about, with its admin's address.
type NoticeMirror struct {
	ID      int
	Name    string
	BaseURL string
	Contact string // "" when it has none (any more)
}

// DecidingCheck is a failed check of the run that changed a mirror's
// state.
type DecidingCheck struct {
	At      time.Time
	Vantage string
	Family  string
	Path    string // "" for the mirror itself
	Kind    string
	Detail  string
}

// FailingFile is a file whose latest check on a mirror failed.
type FailingFile struct {
	Release, Path, Kind, Detail string
}

// StateMail is what a state notice says.
type StateMail struct {
	Mirror           NoticeMirror
	At               time.Time
	From, To, Reason string
	RunID            int64
	Checks           []DecidingCheck
	ChecksTotal      int
	Files            []FailingFile
	FilesTotal       int
}

// StateMail reads what the state notice of key says, with at most limit
// checks and files.
func (s *Store) StateMail(ctx context.Context, key string, limit int) (StateMail, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(key, "state-"), 10, 64)
	if err != nil {
		return StateMail{}, fmt.Errorf("notice %q is not a state notice", key)
	}
	var m StateMail
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var run *int64
		if err := tx.QueryRow(ctx, `
			SELECT m.id, m.name, rtrim(m.baseurl, '/'), coalesce(st.contact, ''), sc.at, sc.from_state, sc.to_state, sc.reason, sc.run_id
			FROM sentry_state_changes sc JOIN mirror_mirrors m ON m.id = sc.mirror_id
			LEFT JOIN sentry_mirror_settings st ON st.mirror_id = m.id
			WHERE sc.id = $1`, id).Scan(&m.Mirror.ID, &m.Mirror.Name, &m.Mirror.BaseURL, &m.Mirror.Contact, &m.At, &m.From, &m.To,
			&m.Reason, &run); err != nil {
			return err
		}
		if run != nil {
			m.RunID = *run
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM sentry_checks WHERE run_id = $1 AND mirror_id = $2
				AND result NOT IN ('ok', 'unchanged')`, m.RunID, m.Mirror.ID).Scan(&m.ChecksTotal); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT checked_at, vantage, family, path, result, detail FROM sentry_checks
				WHERE run_id = $1 AND mirror_id = $2 AND result NOT IN ('ok', 'unchanged')
				ORDER BY path = '' DESC, checked_at LIMIT $3`, m.RunID, m.Mirror.ID, limit)
			if err != nil {
				return err
			}
			m.Checks, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (DecidingCheck, error) {
				var c DecidingCheck
				err := r.Scan(&c.At, &c.Vantage, &c.Family, &c.Path, &c.Kind, &c.Detail)
				return c, err
			})
			if err != nil {
				return err
			}
		}
		m.Files, m.FilesTotal, err = failingFiles(ctx, tx, m.Mirror.ID, limit)
		return err
	})
	if err != nil {
		return StateMail{}, s.wrap("read state notice "+key, err)
	}
	return m, nil
}

func failingFiles(ctx context.Context, tx pgx.Tx, mirrorID, limit int) ([]FailingFile, int, error) {
	var total int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM sentry_file_state WHERE mirror_id = $1 AND result NOT IN ('ok', 'unchanged')`,
		mirrorID).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := tx.Query(ctx, `SELECT r.name, fs.path, fs.result, fs.detail FROM sentry_file_state fs
		JOIN sentry_releases r ON r.id = fs.release_id
		WHERE fs.mirror_id = $1 AND fs.result NOT IN ('ok', 'unchanged') ORDER BY r.name, fs.path LIMIT $2`, mirrorID, limit)
	if err != nil {
		return nil, 0, err
	}
	files, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FailingFile, error) {
		var f FailingFile
		err := r.Scan(&f.Release, &f.Path, &f.Kind, &f.Detail)
		return f, err
	})
	return files, total, err
}

// TLSMail is what a certificate notice says: the mirror and its
// certificate as recorded (nil when it was replaced since the warning).
type TLSMail struct {
	Mirror NoticeMirror
	Cert   *CertRecord
}

// TLSMail reads what the certificate notice of key says.
func (s *Store) TLSMail(ctx context.Context, key string, mirrorID int) (TLSMail, error) {
	var m TLSMail
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT m.id, m.name, rtrim(m.baseurl, '/'), coalesce(st.contact, '')
			FROM mirror_mirrors m LEFT JOIN sentry_mirror_settings st ON st.mirror_id = m.id WHERE m.id = $1`, mirrorID).
			Scan(&m.Mirror.ID, &m.Mirror.Name, &m.Mirror.BaseURL, &m.Mirror.Contact); err != nil {
			return err
		}
		var c CertRecord
		err := scanCert(tx.QueryRow(ctx, `SELECT host, fingerprint, subject, issuer, names, not_before, not_after, error, seen_at, warned_at
			FROM sentry_mirror_tls WHERE mirror_id = $1 AND $2 = 'tls-' || mirror_id || '-' || fingerprint`, mirrorID, key), &c)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err == nil {
			m.Cert = &c
		}
		return err
	})
	if err != nil {
		return TLSMail{}, s.wrap("read certificate notice "+key, err)
	}
	return m, nil
}
