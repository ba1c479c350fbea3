package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mirrorsentry/sentry/checks"
)

// What `sentry mirror` reads and writes of a mirror: its own settings
// (sentry_mirror_settings), what sentry learned of it
// (sentry_mirror_priming, sentry_mirror_ranges), its regions and its
// recent log lines.

// MirrorSettings are a mirror's own settings, its sentry_mirror_settings
// row: an empty text or a zero number stands for NULL (the configured
// default). A mirror without a row has them all zero but Mode, pull.
type MirrorSettings struct {
	Mode           string // pull, trigger, passive
	TriggerURL     string
	MaxConcurrency int
	MaxRate        float64
	RsyncURL       string
	PurgeMethod    string
	PurgeURL       string
	Contact        string
}

// Settings are the settings of an active mirror as runs read them (its
// contact aside: runs do not read it).
func (m Mirror) Settings() MirrorSettings {
	return MirrorSettings{Mode: m.Mode, TriggerURL: m.TriggerURL, MaxConcurrency: m.MaxConcurrency, MaxRate: m.MaxRate,
		RsyncURL: m.RsyncURL, PurgeMethod: m.PurgeMethod, PurgeURL: m.PurgeURL}
}

// MirrorRecord is a bouncer mirror (active or not) with what sentry
// holds of it.
type MirrorRecord struct {
	ID      int
	Name    string
	BaseURL string
	Rating  int
	Active  bool
	// HasRegion: it has a geoip_mirror_region_map row, which the
	// redirector's region join asks of a mirror it offers (HasRegionSQL);
	// Regions are the regions those rows name (a row may name none).
	HasRegion bool
	Regions   []int
	// HasSettings: it has a settings row (else Settings are the
	// defaults).
	HasSettings bool
	Settings    MirrorSettings
	// Priming and Ranges are what sentry learned of it, nil for nothing.
	Priming *Priming
	Ranges  *RangeWay
}

// MirrorRecords returns every bouncer mirror, by name, or only the one
// named name (an error wrapping ErrNoMirror, naming some that exist,
// when there is none).
func (s *Store) MirrorRecords(ctx context.Context, name string) ([]MirrorRecord, error) {
	var out []MirrorRecord
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		id := 0
		if name != "" {
			var err error
			if id, err = mirrorByName(ctx, tx, name); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, `
			SELECT m.id, m.name, m.baseurl, m.rating, m.active, `+HasRegionSQL("m")+`,
			       coalesce((SELECT array_agg(g.region_id ORDER BY g.region_id) FROM geoip_mirror_region_map g
			                 WHERE g.mirror_id = m.id AND g.region_id IS NOT NULL), '{}'),
			       st.mirror_id IS NOT NULL, coalesce(st.prime_mode, 'pull'), coalesce(st.trigger_url, ''),
			       coalesce(st.max_concurrency, 0), coalesce(st.max_rate, 0), coalesce(st.rsync_url, ''),
			       coalesce(st.purge_method, ''), coalesce(st.purge_url, ''), coalesce(st.contact, ''),
			       pr.prime_by, coalesce(pr.reason, ''), pr.learned_at,
			       rw.mirror_id IS NOT NULL, coalesce(rw.max_ranges, 0), coalesce(rw.in_full, false), coalesce(rw.reason, ''), rw.learned_at
			FROM mirror_mirrors m
			LEFT JOIN sentry_mirror_settings st ON st.mirror_id = m.id
			LEFT JOIN sentry_mirror_priming pr ON pr.mirror_id = m.id
			LEFT JOIN sentry_mirror_ranges rw ON rw.mirror_id = m.id
			WHERE $1 = 0 OR m.id = $1
			ORDER BY m.name`, id)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (MirrorRecord, error) {
			var m MirrorRecord
			var primeBy *string
			var primed, rangesAt *time.Time
			var ranged bool
			var p Priming
			var w RangeWay
			err := r.Scan(&m.ID, &m.Name, &m.BaseURL, &m.Rating, &m.Active, &m.HasRegion, &m.Regions, &m.HasSettings, &m.Settings.Mode,
				&m.Settings.TriggerURL, &m.Settings.MaxConcurrency, &m.Settings.MaxRate, &m.Settings.RsyncURL,
				&m.Settings.PurgeMethod, &m.Settings.PurgeURL, &m.Settings.Contact, &primeBy, &p.Reason, &primed,
				&ranged, &w.Way.MaxRanges, &w.Way.InFull, &w.Reason, &rangesAt)
			if primeBy != nil {
				p.By, p.LearnedAt = *primeBy, deref(primed)
				m.Priming = &p
			}
			if ranged {
				w.LearnedAt = deref(rangesAt)
				m.Ranges = &w
			}
			return m, err
		})
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNoMirror) {
			return nil, err
		}
		return nil, s.wrap("read mirrors", err)
	}
	return out, nil
}

// SetMirrorSettings changes the settings of the mirror named name in one
// transaction: change is given its base URL and settings as they are,
// and returns them as they are to be, or an error — then nothing is
// written. The mirror is locked meanwhile, so two changes at once are
// applied one after the other. It returns the settings before and
// after.
func (s *Store) SetMirrorSettings(ctx context.Context, name string,
	change func(baseURL string, cur MirrorSettings) (MirrorSettings, error)) (before, after MirrorSettings, err error) {
	var refused error // change's own verdict
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		id, err := mirrorByName(ctx, tx, name)
		if err != nil {
			return err
		}
		var base string
		if err := tx.QueryRow(ctx, `SELECT baseurl FROM mirror_mirrors WHERE id = $1 FOR UPDATE`, id).Scan(&base); err != nil {
			return err
		}
		before = MirrorSettings{Mode: ModePull}
		err = tx.QueryRow(ctx, `SELECT prime_mode, coalesce(trigger_url, ''), coalesce(max_concurrency, 0), coalesce(max_rate, 0),
				coalesce(rsync_url, ''), coalesce(purge_method, ''), coalesce(purge_url, ''), coalesce(contact, '')
			FROM sentry_mirror_settings WHERE mirror_id = $1`, id).Scan(&before.Mode, &before.TriggerURL, &before.MaxConcurrency,
			&before.MaxRate, &before.RsyncURL, &before.PurgeMethod, &before.PurgeURL, &before.Contact)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if after, refused = change(base, before); refused != nil {
			return refused
		}
		if after.Mode == "" {
			after.Mode = ModePull
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO sentry_mirror_settings AS st (mirror_id, prime_mode, trigger_url, max_concurrency, max_rate, rsync_url,
				purge_method, purge_url, contact)
			VALUES ($1, $2, nullif($3, ''), nullif($4, 0), nullif($5, 0::real), nullif($6, ''), nullif($7, ''), nullif($8, ''), nullif($9, ''))
			ON CONFLICT (mirror_id) DO UPDATE SET prime_mode = excluded.prime_mode, trigger_url = excluded.trigger_url,
				max_concurrency = excluded.max_concurrency, max_rate = excluded.max_rate, rsync_url = excluded.rsync_url,
				purge_method = excluded.purge_method, purge_url = excluded.purge_url, contact = excluded.contact`,
			id, after.Mode, after.TriggerURL, after.MaxConcurrency, float32(after.MaxRate), after.RsyncURL, after.PurgeMethod,
			after.PurgeURL, after.Contact)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNoMirror) || refused != nil {
			return MirrorSettings{}, MirrorSettings{}, err // the mirror's name, or change's own verdict
		}
		return MirrorSettings{}, MirrorSettings{}, s.wrap("set the settings of mirror "+name, err)
	}
	return before, after, nil
}

// Forgotten says what ForgetMirror forgot of a mirror.
type Forgotten struct {
	MirrorID int
	// Priming: how to prime it (sentry_mirror_priming); Ranges: how its
	// server answers ranges (sentry_mirror_ranges).
	Priming, Ranges bool
}

// ForgetMirror forgets, in one transaction, what sentry learned of the
// mirror named name — how a prime fills its cache and how its server
// answers ranges — so that the next sampled prime and check learn them
// again (after its server was reconfigured, say).
func (s *Store) ForgetMirror(ctx context.Context, name string) (Forgotten, error) {
	var f Forgotten
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		id, err := mirrorByName(ctx, tx, name)
		if err != nil {
			return err
		}
		f.MirrorID = id
		if f.Priming, err = forgetPriming(ctx, tx, id); err != nil {
			return err
		}
		f.Ranges, err = forgetRangeWay(ctx, tx, id)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNoMirror) {
			return Forgotten{}, err
		}
		return Forgotten{}, s.wrap("forget what was learned of mirror "+name, err)
	}
	return f, nil
}

// LogLine is a sentry_log row of a mirror: what a run found.
type LogLine struct {
	LogDate time.Time
	Up      bool // mirror_active
	Reason  string
}

// MirrorLog returns the newest limit sentry_log lines of a mirror, newest
// first.
func (s *Store) MirrorLog(ctx context.Context, mirrorID, limit int) ([]LogLine, error) {
	rows, err := s.pool.Query(ctx, `SELECT log_date, mirror_active, reason FROM sentry_log WHERE mirror_id = $1
		ORDER BY log_date DESC LIMIT $2`, mirrorID, limit)
	if err != nil {
		return nil, s.wrap("read the log of a mirror", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LogLine, error) {
		var l LogLine
		err := r.Scan(&l.LogDate, &l.Up, &l.Reason)
		return l, err
	})
	return out, s.wrap("read the log of a mirror", err)
}

// RangeWayWords says what was learned of a server's ranges: "at most 10
// ranges a request", "no range honoured: files read in full".
func RangeWayWords(w checks.RangeWay) string {
	if w.InFull {
		return "no range honoured: files read in full"
	}
	return fmt.Sprintf("at most %d ranges a request", w.MaxRanges)
}
