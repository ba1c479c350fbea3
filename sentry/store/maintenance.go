package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/checks"
)

// StateMaintenance is the word of sentry_state_changes for a mirror in a
// maintenance window (sentry_mirror_state.state stays up or down: the
// window holds its hysteresis).
const StateMaintenance = "maintenance"

// MirrorAdmin is what the mirror's admin said of it: the contact, a
// maintenance window, and since when its offer is suspended.
type MirrorAdmin struct {
	MirrorID int
	// Contact is sentry_mirror_settings.contact, "" for none.
	Contact string
	// MaintSince and MaintUntil bound its latest maintenance window (zero
	// for none); MaintReason is what the admin said of it.
	MaintSince, MaintUntil time.Time
	MaintReason            string
	// SuspendedAt is when its offer was suspended (a window began), zero
	// when it is not: until its return is complete, only files verified
	// since count as verified (verifiedSince), and a sweep hashes the
	// others (decide.RehashOnReturn).
	SuspendedAt time.Time
}

// MirrorAdmins returns what the admins said of every mirror that has
// anything said of it, by mirror id.
func (s *Store) MirrorAdmins(ctx context.Context) (map[int]MirrorAdmin, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT m.id, coalesce(st.contact, ''), mw.since, mw.until, coalesce(mw.reason, ''), ms.suspended_at
		FROM mirror_mirrors m
		LEFT JOIN sentry_mirror_settings st ON st.mirror_id = m.id
		LEFT JOIN sentry_maintenance mw ON mw.mirror_id = m.id
		LEFT JOIN sentry_mirror_state ms ON ms.mirror_id = m.id
		WHERE st.contact IS NOT NULL OR mw.mirror_id IS NOT NULL OR ms.suspended_at IS NOT NULL`)
	if err != nil {
		return nil, s.wrap("read mirror admins", err)
	}
	defer rows.Close()
	out := map[int]MirrorAdmin{}
	for rows.Next() {
		var a MirrorAdmin
		var since, until, susp *time.Time
		if err := rows.Scan(&a.MirrorID, &a.Contact, &since, &until, &a.MaintReason, &susp); err != nil {
			return nil, s.wrap("read mirror admins", err)
		}
		a.MaintSince, a.MaintUntil, a.SuspendedAt = deref(since), deref(until), deref(susp)
		out[a.MirrorID] = a
	}
	return out, s.wrap("read mirror admins", rows.Err())
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// ErrNoMirror is wrapped by the errors of maintenance commands naming a
// mirror that does not exist.
var ErrNoMirror = errors.New("no such mirror")

// ErrNoWindow is returned by EndMaintenance when no window holds.
var ErrNoWindow = errors.New("no maintenance window holds")

// ErrPast is wrapped by StartMaintenance's error for a window ending
// before now.
var ErrPast = errors.New("is not in the future")

// Window is a maintenance window as the command set it.
type Window struct {
	MirrorID     int
	Mirror       string
	Since, Until time.Time
	Reason       string
	// Started: a new window began (one already holding was extended or
	// shortened otherwise).
	Started bool
}

// StartMaintenance puts the mirror named name into maintenance until
// until, with the admin's reason, in one transaction: the window, every
// location of the mirror unhealthy (the redirector avoids it), its offer
// suspended (it is re-verified when the window ends) and, for a new
// window, a state change to "maintenance" in the history. A window that
// holds already gets the new end and reason. until must be in the future
// (by the database's clock).
func (s *Store) StartMaintenance(ctx context.Context, name string, until time.Time, reason string) (Window, error) {
	w := Window{Mirror: name, Until: until, Reason: reason}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		id, err := mirrorByName(ctx, tx, name)
		if err != nil {
			return err
		}
		w.MirrorID = id
		var now time.Time
		if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
			return err
		}
		if !until.After(now) {
			return fmt.Errorf("the end of the window, %s, %w (it is %s now)", until.UTC().Format(time.RFC3339), ErrPast,
				now.UTC().Format(time.RFC3339))
		}
		prev, err := lockState(ctx, tx, id)
		if err != nil {
			return err
		}
		var since *time.Time
		if err := tx.QueryRow(ctx, `SELECT since FROM sentry_maintenance WHERE mirror_id = $1 AND until > now()`, id).Scan(&since); err != nil &&
			!errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		w.Started = since == nil
		w.Since = now
		if since != nil {
			w.Since = *since
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sentry_maintenance (mirror_id, since, until, reason) VALUES ($1, $2, $3, $4)
			ON CONFLICT (mirror_id) DO UPDATE SET since = excluded.since, until = excluded.until, reason = excluded.reason`,
			id, w.Since, until, reason); err != nil {
			return err
		}
		if !w.Started {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE sentry_mirror_state SET suspended_at = coalesce(suspended_at, now()) WHERE mirror_id = $1`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE mirror_location_mirror_map SET healthy = false WHERE mirror_id = $1 AND healthy`, id); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO sentry_state_changes (mirror_id, at, from_state, to_state, reason) VALUES ($1, now(), $2, $3, $4)`,
			id, prev.State, StateMaintenance, MaintenanceReason(until, reason))
		return err
	})
	if err != nil {
		return Window{}, s.maintErr(name, err)
	}
	return w, nil
}

// EndMaintenance ends the mirror's window now. Its offer stays suspended:
// the next sweep re-verifies it (its files hashed) before offering it.
func (s *Store) EndMaintenance(ctx context.Context, name string) (Window, error) {
	w := Window{Mirror: name}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		id, err := mirrorByName(ctx, tx, name)
		if err != nil {
			return err
		}
		w.MirrorID = id
		if _, err := lockState(ctx, tx, id); err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `UPDATE sentry_maintenance SET until = greatest(now(), since) WHERE mirror_id = $1 AND until > now()
			RETURNING since, until, reason`, id).Scan(&w.Since, &w.Until, &w.Reason)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w for mirror %s", ErrNoWindow, name)
		}
		return err
	})
	if err != nil {
		return Window{}, s.maintErr(name, err)
	}
	return w, nil
}

func (s *Store) maintErr(name string, err error) error {
	if errors.Is(err, ErrNoMirror) || errors.Is(err, ErrNoWindow) || errors.Is(err, ErrPast) {
		return err
	}
	return s.wrap("maintenance of mirror "+name, err)
}

// mirrorByName finds a mirror (active or not) by name; one that does not
// exist is an error naming some that do.
func mirrorByName(ctx context.Context, tx pgx.Tx, name string) (int, error) {
	var id int
	err := tx.QueryRow(ctx, `SELECT id FROM mirror_mirrors WHERE name = $1`, name).Scan(&id)
	if !errors.Is(err, pgx.ErrNoRows) {
		return id, err
	}
	rows, err := tx.Query(ctx, `SELECT name FROM mirror_mirrors ORDER BY name LIMIT 9`)
	if err != nil {
		return 0, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, err
	}
	have := "none"
	if len(names) > 8 {
		names[8] = "…"
	}
	if len(names) > 0 {
		have = strings.Join(names, ", ")
	}
	return 0, fmt.Errorf("%w named %q in mirror_mirrors (it holds: %s)", ErrNoMirror, name, have)
}

// MaintenanceReason is the one line a maintenance window is announced
// by, in the state history, the log row and the page: "maintenance until
// 2026-11-25 18:00 UTC: disk swap".
func MaintenanceReason(until time.Time, reason string) string {
	r := "maintenance until " + until.UTC().Format("2006-01-02 15:04 UTC")
	if reason != "" {
		r += ": " + reason
	}
	return r
}

// CertRecord is a mirror's certificate as recorded.
type CertRecord struct {
	checks.Cert
	SeenAt   time.Time
	WarnedAt time.Time // zero: no warning raised
}

// SaveCert records the certificate a sweep saw of a mirror, only when it
// differs from the one recorded (another certificate, or another verdict
// on it): a sweep that finds the same one writes nothing. It returns the
// certificate as recorded after the call.
func (s *Store) SaveCert(ctx context.Context, mirrorID int, c checks.Cert) (CertRecord, error) {
	var r CertRecord
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO sentry_mirror_tls AS t (mirror_id, host, fingerprint, subject, issuer, names, not_before, not_after, error, seen_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
			ON CONFLICT (mirror_id) DO UPDATE SET host = excluded.host, fingerprint = excluded.fingerprint,
				subject = excluded.subject, issuer = excluded.issuer, names = excluded.names, not_before = excluded.not_before,
				not_after = excluded.not_after, error = excluded.error, seen_at = excluded.seen_at,
				warned_at = CASE WHEN t.fingerprint = excluded.fingerprint THEN t.warned_at END
			WHERE (t.host, t.fingerprint, t.error) IS DISTINCT FROM (excluded.host, excluded.fingerprint, excluded.error)`,
			mirrorID, c.Host, c.Fingerprint, c.Subject, c.Issuer, nonNil(c.Names), c.NotBefore, c.NotAfter, c.Error); err != nil {
			return err
		}
		return scanCert(tx.QueryRow(ctx, `SELECT host, fingerprint, subject, issuer, names, not_before, not_after, error, seen_at, warned_at
			FROM sentry_mirror_tls WHERE mirror_id = $1`, mirrorID), &r)
	})
	return r, s.wrap(fmt.Sprintf("record the certificate of mirror %d", mirrorID), err)
}

// WarnCert marks the mirror's certificate of fingerprint as warned about,
// once: it reports whether this call did (an earlier one, or another
// sentry's, makes it false).
func (s *Store) WarnCert(ctx context.Context, mirrorID int, fingerprint string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE sentry_mirror_tls SET warned_at = now()
		WHERE mirror_id = $1 AND fingerprint = $2 AND warned_at IS NULL`, mirrorID, fingerprint)
	if err != nil {
		return false, s.wrap("record a certificate warning", err)
	}
	return tag.RowsAffected() == 1, nil
}

func scanCert(row pgx.Row, r *CertRecord) error {
	var warned *time.Time
	if err := row.Scan(&r.Host, &r.Fingerprint, &r.Subject, &r.Issuer, &r.Names, &r.NotBefore, &r.NotAfter, &r.Error,
		&r.SeenAt, &warned); err != nil {
		return err
	}
	r.WarnedAt = deref(warned)
	return nil
}
