// Package report computes what ops read about mirrors and releases from
// the checks sentry recorded: the per-mirror failure report, one mirror's
// failing files and state history, a release's uptake, and the history
// strips of the status page. Every figure is computed in PostgreSQL (the
// checks table holds millions of rows; none of them is loaded here), and
// every list is bounded.
//
// The same values feed `sentry report` (table, JSON, CSV), the status page
// and its /api/ (package web).
package report

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mirrorsentry/sentry/sentry/internal/humanize"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// ErrNotFound is returned (wrapped) when the mirror or release asked about
// does not exist.
var ErrNotFound = errors.New("not found")

// Limits on the lists a report returns: a mirror failing every file of
// every release must not produce an unbounded page.
const (
	maxFailingFiles = 1000
	maxStateChanges = 500
	maxReleaseFiles = 20000
)

// successes are the results that are not failures.
const successSQL = `('ok', 'unchanged')`

// missingSQL and corruptSQL group the file failures the report counts as
// "missing" (the mirror does not have the file) and "corrupt" (it has
// something else under its name).
const (
	missingSQL = `('not_found', 'forbidden', 'not_primed')`
	corruptSQL = `('size_mismatch', 'checksum_mismatch', 'truncated', 'too_large')`
)

// Reporter answers report queries from the database.
type Reporter struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// New returns a Reporter reading pool. now is the clock of the window's
// end; nil means time.Now.
func New(pool *pgxpool.Pool, now func() time.Time) *Reporter {
	if now == nil {
		now = time.Now
	}
	return &Reporter{pool: pool, now: now}
}

// Window is the time range a report covers: [Since, Until).
type Window struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

// LastFailure is the newest failed check of a mirror in the window.
type LastFailure struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Path   string    `json:"path"` // "" for a check of the mirror itself
	Detail string    `json:"detail"`
}

// MirrorRow is one mirror of the per-mirror report.
type MirrorRow struct {
	ID      int    `json:"id"`
	Name    string `json:"name"`
	BaseURL string `json:"baseurl"`
	Rating  int    `json:"rating"`
	// State is "up" or "down" as sweeps judged it, "disabled" when the
	// admin switch mirror_mirrors.active is off, "unknown" before the first
	// sweep. StateSince is when it entered that state (nil when unknown).
	State      string     `json:"state"`
	StateSince *time.Time `json:"state_since"`
	// FailingFrom lists the vantage points (the `vantage` of the sentry
	// processes sharing the sweeps) the mirror failed from at its last
	// sweep, CheckedFrom those that checked it then; both sorted, empty
	// before a sweep recorded them, never null. A mirror goes down only
	// when a quorum of vantage points fails it.
	FailingFrom []string `json:"failing_from"`
	CheckedFrom []string `json:"checked_from"`
	// Partial says the mirror is "partially unreachable": up, but at its
	// last sweep it failed from some of the vantage points that checked it
	// (fewer than the quorum) while others reached it. A mirror failing
	// from every vantage point that checked it is not partial (it is
	// failing, and goes down once hysteresis allows).
	Partial bool `json:"partial"`
	// Checks and Failures count the checks in the window; FailuresByKind
	// splits Failures by failure kind (docs/CONTRACTS.md, section 5 (Failure
	// kinds)).
	Checks         int64            `json:"checks"`
	Failures       int64            `json:"failures"`
	FailuresByKind map[string]int64 `json:"failures_by_kind"`
	// FilesMissing and FilesCorrupt count the release files whose latest
	// check failed as missing (not_found, forbidden, not_primed) or corrupt
	// (size_mismatch, checksum_mismatch, truncated, too_large), now.
	FilesMissing int64        `json:"files_missing"`
	FilesCorrupt int64        `json:"files_corrupt"`
	LastFailure  *LastFailure `json:"last_failure"`
	// LastCheck is the time of the mirror's newest check, in or before the
	// window; nil if it was never checked.
	LastCheck *time.Time `json:"last_check"`
	// LastSweep is when a sweep last judged the mirror, and LastReason what
	// that sweep found (sentry_mirror_state); nil and "" before its first.
	LastSweep  *time.Time `json:"last_sweep"`
	LastReason string     `json:"last_reason"`
	// Degraded: up, but some of its locations of active products are off
	// (mirror_location_mirror_map active=false or healthy=false):
	// LocationsOff counts them, OffLocations names the first ones (by
	// path, at most 5).
	Degraded     bool     `json:"degraded"`
	LocationsOff int64    `json:"locations_off"`
	OffLocations []string `json:"off_locations"`
	// BrokenFamilies are the address families (ipv4, ipv6) the mirror
	// failed over at its last sweep while reached over another: an up
	// mirror broken over one is degraded (state.family_policy "degraded"
	// keeps it offered). Never null.
	BrokenFamilies []string `json:"broken_families"`
	// TLS is the certificate of an https mirror at its last sweep, nil
	// for none.
	TLS *TLSInfo `json:"tls"`
	// Maintenance is the maintenance window holding now, nil for none:
	// the mirror's condition is "maintenance". Returning: its window is
	// over and it is being re-verified (offered only for files hashed
	// since the window began).
	Maintenance *MaintenanceInfo `json:"maintenance"`
	Returning   bool             `json:"returning"`
}

// Conditions are the words of Condition, in the order views list them.
var Conditions = []string{"up", "degraded", "down", "unknown", "disabled", "maintenance"}

// Condition is the one word every view (report, status page, metrics)
// gives the mirror's condition: its state (up, down, unknown, disabled),
// except that an active mirror in a maintenance window is "maintenance",
// and an up mirror with locations off, or broken over one address family,
// is "degraded".
func (m MirrorRow) Condition() string {
	switch {
	case m.Maintenance != nil && m.State != "disabled":
		return "maintenance"
	case m.Degraded:
		return "degraded"
	}
	return m.State
}

// Why says in a line why the mirror is not simply up: for a down mirror,
// what its last sweep found; for a degraded one, which locations are off;
// for a partially unreachable one, where it fails from. "" otherwise.
func (m MirrorRow) Why() string {
	switch {
	case m.Condition() == "maintenance":
		return m.Maintenance.Line()
	case m.State == "down":
		return oneLine(m.LastReason)
	case m.Degraded:
		var parts []string
		if f := m.familiesWhy(); f != "" {
			parts = append(parts, f)
		}
		if m.Returning {
			parts = append(parts, "back from maintenance, being re-verified: offered only for files hashed since")
		}
		if m.LocationsOff > 0 {
			s := fmt.Sprintf("%d location", m.LocationsOff)
			if m.LocationsOff != 1 {
				s += "s"
			}
			s += " off: " + strings.Join(m.OffLocations, ", ")
			if more := m.LocationsOff - int64(len(m.OffLocations)); more > 0 {
				s += fmt.Sprintf(" and %d more", more)
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, "; ")
	case m.Partial:
		return m.VantageNote()
	}
	return ""
}

// offSQL is what makes an up mirror degraded, defined once for every
// view: store.OffLocationsSQL.
const offSQL = store.OffLocationsSQL

// settle fills what a row's state decides once it is read.
func (m *MirrorRow) settle(active bool, state *string) {
	m.State = stateOf(active, state)
	if m.State == "disabled" || m.State == "unknown" {
		m.StateSince = nil
	}
	m.FailingFrom, m.CheckedFrom = sortedSet(m.FailingFrom), sortedSet(m.CheckedFrom)
	m.Partial = m.State == "up" && len(m.FailingFrom) > 0 && len(m.ReachableFrom()) > 0
	if m.OffLocations == nil || m.State != "up" {
		m.OffLocations = []string{}
	}
	if m.BrokenFamilies == nil || m.State != "up" {
		m.BrokenFamilies = []string{}
	}
	m.Degraded = m.State == "up" && (m.LocationsOff > 0 || len(m.BrokenFamilies) > 0)
	if m.State != "up" {
		m.LocationsOff = 0
	}
}

// States returns every mirror's state as the sweeps left it — state, the
// vantage points, the last sweep and its reason, locations off — without
// the window's counts: what /metrics reads at each scrape.
func (r *Reporter) States(ctx context.Context) ([]MirrorRow, error) {
	rows, err := r.pool.Query(ctx, `
		WITH off AS (`+offSQL+`)
		SELECT m.id, m.name, m.baseurl, m.rating, m.active, ms.state, ms.since,
		       coalesce(ms.failing_from, '{}'), coalesce(ms.checked_from, '{}'),
		       ms.last_check, coalesce(ms.last_reason, ''), coalesce(off.n, 0), off.paths`+adminCols+`
		FROM mirror_mirrors m
		LEFT JOIN sentry_mirror_state ms ON ms.mirror_id = m.id
		LEFT JOIN off ON off.mirror_id = m.id`+adminJoins+`
		ORDER BY m.name`)
	if err != nil {
		return nil, fmt.Errorf("mirror states: %w", err)
	}
	out := []MirrorRow{}
	for rows.Next() {
		var m MirrorRow
		var active bool
		var state *string
		var a adminScan
		if err := rows.Scan(append([]any{&m.ID, &m.Name, &m.BaseURL, &m.Rating, &active, &state, &m.StateSince, &m.FailingFrom,
			&m.CheckedFrom, &m.LastSweep, &m.LastReason, &m.LocationsOff, &m.OffLocations}, a.dest()...)...); err != nil {
			rows.Close()
			return nil, fmt.Errorf("mirror states: %w", err)
		}
		m.settleAdmin(&a, r.now())
		m.settle(active, state)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mirror states: %w", err)
	}
	return out, nil
}

// Mirrors is the default report: one row per mirror, by name.
type Mirrors struct {
	Window
	Mirrors []MirrorRow `json:"mirrors"`
}

// Mirrors returns the per-mirror report over w. Checks are counted by the
// hour: the window starts at the beginning of w.Since's hour (the returned
// Window says so).
func (r *Reporter) Mirrors(ctx context.Context, w Window) (*Mirrors, error) {
	w.Since = w.Since.UTC().Truncate(time.Hour)
	rows, err := r.pool.Query(ctx, `
		WITH win AS (
			SELECT mirror_id, result, sum(n) AS n
			FROM sentry_check_hourly WHERE hour >= $1 AND hour < $2
			GROUP BY mirror_id, result
		), sums AS (
			SELECT mirror_id, sum(n) AS checks,
			       coalesce(sum(n) FILTER (WHERE result NOT IN `+successSQL+`), 0) AS failures,
			       coalesce(jsonb_object_agg(result, n) FILTER (WHERE result NOT IN `+successSQL+`), '{}') AS by_kind
			FROM win GROUP BY mirror_id
		), files AS (
			SELECT mirror_id,
			       count(*) FILTER (WHERE result IN `+missingSQL+`) AS missing,
			       count(*) FILTER (WHERE result IN `+corruptSQL+`) AS corrupt
			FROM sentry_file_state WHERE result NOT IN `+successSQL+` GROUP BY mirror_id
		), off AS (`+offSQL+`)
		SELECT m.id, m.name, m.baseurl, m.rating, m.active, ms.state, ms.since,
		       coalesce(ms.failing_from, '{}'), coalesce(ms.checked_from, '{}'),
		       coalesce(s.checks, 0), coalesce(s.failures, 0), coalesce(s.by_kind, '{}'),
		       coalesce(f.missing, 0), coalesce(f.corrupt, 0),
		       lf.checked_at, lf.result, lf.path, lf.detail, lc.checked_at,
		       ms.last_check, coalesce(ms.last_reason, ''), coalesce(off.n, 0), off.paths`+adminCols+`
		FROM mirror_mirrors m
		LEFT JOIN sentry_mirror_state ms ON ms.mirror_id = m.id`+adminJoins+`
		LEFT JOIN sums s ON s.mirror_id = m.id
		LEFT JOIN files f ON f.mirror_id = m.id
		LEFT JOIN off ON off.mirror_id = m.id
		LEFT JOIN LATERAL (
			SELECT c.checked_at, c.result, c.path, c.detail FROM sentry_checks c
			WHERE s.failures > 0 AND c.mirror_id = m.id AND c.checked_at >= $1 AND c.checked_at < $2
			  AND c.result NOT IN `+successSQL+`
			ORDER BY c.checked_at DESC LIMIT 1
		) lf ON true
		LEFT JOIN LATERAL (
			SELECT h.last_at AS checked_at FROM sentry_check_hourly h
			WHERE h.mirror_id = m.id AND h.hour < $2 AND h.last_at < $2
			ORDER BY h.hour DESC, h.last_at DESC LIMIT 1
		) lc ON true
		ORDER BY m.name`, w.Since, w.Until)
	if err != nil {
		return nil, fmt.Errorf("mirror report: %w", err)
	}
	out := &Mirrors{Window: w, Mirrors: []MirrorRow{}}
	for rows.Next() {
		var (
			m        MirrorRow
			active   bool
			state    *string
			lfAt     *time.Time
			lfKind   *string
			lfPath   *string
			lfDetail *string
		)
		var a adminScan
		if err := rows.Scan(append([]any{&m.ID, &m.Name, &m.BaseURL, &m.Rating, &active, &state, &m.StateSince,
			&m.FailingFrom, &m.CheckedFrom, &m.Checks, &m.Failures, &m.FailuresByKind, &m.FilesMissing, &m.FilesCorrupt,
			&lfAt, &lfKind, &lfPath, &lfDetail, &m.LastCheck, &m.LastSweep, &m.LastReason, &m.LocationsOff, &m.OffLocations},
			a.dest()...)...); err != nil {
			rows.Close()
			return nil, fmt.Errorf("mirror report: %w", err)
		}
		m.settleAdmin(&a, r.now())
		m.settle(active, state)
		if lfAt != nil {
			m.LastFailure = &LastFailure{At: *lfAt, Kind: *lfKind, Path: *lfPath, Detail: *lfDetail}
		}
		out.Mirrors = append(out.Mirrors, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mirror report: %w", err)
	}
	return out, nil
}

// sortedSet sorts l and drops repeats; nil becomes an empty list.
func sortedSet(l []string) []string {
	out := make([]string, 0, len(l))
	seen := map[string]bool{}
	for _, v := range l {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// Vantages lists every vantage point that checked the mirror at its last
// sweep (CheckedFrom, and FailingFrom should a writer have left one out
// there), sorted.
func (m MirrorRow) Vantages() []string {
	return sortedSet(append(append([]string{}, m.CheckedFrom...), m.FailingFrom...))
}

// ReachableFrom lists the vantage points that checked the mirror at its
// last sweep and did not fail it, sorted.
func (m MirrorRow) ReachableFrom() []string {
	failing := map[string]bool{}
	for _, v := range m.FailingFrom {
		failing[v] = true
	}
	out := []string{}
	for _, v := range m.Vantages() {
		if !failing[v] {
			out = append(out, v)
		}
	}
	return out
}

// DownByQuorum says the mirror is down by the verdict of a quorum of
// vantage points while some other vantage point still reached it at its
// last sweep.
func (m MirrorRow) DownByQuorum() bool {
	return m.State == "down" && len(m.FailingFrom) > 0 && len(m.ReachableFrom()) > 0
}

// VantageNote is the short note the tables show under a mirror's row
// about where it fails from: "partial: fails from eu (1/3)", "down by
// quorum: fails from eu, us (2/3)", or, for a mirror failing from every
// one of several vantage points, "fails from ap, eu, us (3/3)". It is ""
// when there is nothing to say: the mirror failed from no vantage point,
// was checked from one only (a single-vantage setup), or is disabled.
func (m MirrorRow) VantageNote() string { return m.vantageNote(0) }

// vantageNote is VantageNote in at most room columns (0: no limit): the
// list of vantage points is clipped, never the head or the count.
func (m MirrorRow) vantageNote(room int) string {
	all := m.Vantages()
	if m.State == "disabled" || len(m.FailingFrom) == 0 || len(all) < 2 {
		return ""
	}
	head := "fails from "
	switch {
	case m.Partial:
		head = "partial: " + head
	case m.DownByQuorum():
		head = "down by quorum: " + head
	}
	names := oneLine(strings.Join(m.FailingFrom, ", "))
	count := fmt.Sprintf(" (%d/%d)", len(m.FailingFrom), len(all))
	if room > 0 {
		names = humanize.Clip(names, max(room-utf8.RuneCountInString(head+count), 1))
	}
	return head + names + count
}

// VantageWords says in a sentence where the mirror was checked from and
// failed from at its last sweep, for the single-mirror views; "" for a
// mirror checked from one vantage point only (or never swept), and for a
// disabled one.
func (m MirrorRow) VantageWords() string {
	all := m.Vantages()
	reach := m.ReachableFrom()
	switch {
	case m.State == "disabled" || len(all) < 2:
		return ""
	case m.Partial:
		return fmt.Sprintf("Partially unreachable: at its last sweep it failed from %s and was reached from %s "+
			"(%d of %d vantage points failed, fewer than the quorum that marks a mirror down).",
			strings.Join(m.FailingFrom, ", "), strings.Join(reach, ", "), len(m.FailingFrom), len(all))
	case m.DownByQuorum():
		return fmt.Sprintf("Down by quorum: at its last sweep it failed from %s (%d of %d vantage points) "+
			"while still reached from %s.", strings.Join(m.FailingFrom, ", "), len(m.FailingFrom), len(all),
			strings.Join(reach, ", "))
	case len(m.FailingFrom) > 0:
		return fmt.Sprintf("At its last sweep it failed from every vantage point that checked it: %s.",
			strings.Join(m.FailingFrom, ", "))
	case len(all) > 1:
		return fmt.Sprintf("At its last sweep it was reached from every vantage point that checked it: %s.",
			strings.Join(all, ", "))
	default:
		return ""
	}
}

func stateOf(active bool, state *string) string {
	switch {
	case !active:
		return "disabled"
	case state == nil:
		return "unknown"
	default:
		return *state
	}
}

// FailingFile is a release file whose latest check on a mirror failed.
type FailingFile struct {
	Release string `json:"release"`
	Path    string `json:"path"`
	Kind    string `json:"kind"`
	// FirstSeen is when the file started failing (its first failed check
	// since it was last good); LastSeen is its latest check.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Detail    string    `json:"detail"`
}

// StateChange is one change of a mirror's state, with its reason.
type StateChange struct {
	At     time.Time `json:"at"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
	RunID  *int64    `json:"run_id"`
}

// MirrorDetail is the report on one mirror.
type MirrorDetail struct {
	Window
	Mirror MirrorRow `json:"mirror"`
	// FailingFiles lists up to 1000 failing files (FailingTotal counts
	// them all), by release and path.
	FailingFiles []FailingFile `json:"failing_files"`
	FailingTotal int64         `json:"failing_total"`
	// History lists the state changes in the window, newest first (up to
	// 500).
	History []StateChange `json:"history"`
	// ByVantage splits the row's checks and failures in the window (by
	// the hour, as the row counts them) by the vantage point that made
	// them, by vantage name.
	ByVantage []VantageCount `json:"by_vantage"`
	// RecentFailures are the mirror's failures in the window, newest
	// first, a run of identical failures of one file (or of the mirror
	// itself) in a row collapsed into one entry with its count (at most
	// 100 entries, from the window's latest 20,000 checks).
	RecentFailures []FailureRun `json:"recent_failures"`
}

// FailureRun is a run of identical failures: Count checks in a row of one
// file (Path, "" for the mirror itself) with the same kind and detail,
// from First to Last.
type FailureRun struct {
	Release string    `json:"release,omitempty"`
	Path    string    `json:"path"`
	Kind    string    `json:"kind"`
	Detail  string    `json:"detail"`
	Count   int64     `json:"count"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
	// Read is how the latest of these checks read the file's bytes:
	// "in full", "32 of 128 blocks" (a sampled check), or "" (it read
	// none: a HEAD, a refused request).
	Read string `json:"read"`
}

// Limits of RecentFailures.
const (
	maxFailureRuns   = 100
	maxFailureChecks = 20000
)

// VantageCount is a vantage point's checks of one mirror in a window.
type VantageCount struct {
	Vantage  string `json:"vantage"`
	Checks   int64  `json:"checks"`
	Failures int64  `json:"failures"`
}

// Mirror returns the report on the mirror named name (or with that id).
func (r *Reporter) Mirror(ctx context.Context, name string, w Window) (*MirrorDetail, error) {
	all, err := r.Mirrors(ctx, w) // one row per mirror: hundreds, not millions
	if err != nil {
		return nil, err
	}
	out := &MirrorDetail{Window: w, FailingFiles: []FailingFile{}, History: []StateChange{}, ByVantage: []VantageCount{},
		RecentFailures: []FailureRun{}}
	found := false
	for _, m := range all.Mirrors {
		if m.Name == name || fmt.Sprint(m.ID) == name {
			out.Mirror, found = m, true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("mirror %q: %w", name, ErrNotFound)
	}
	id := out.Mirror.ID
	err = pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM sentry_file_state
			WHERE mirror_id = $1 AND result NOT IN `+successSQL, id).Scan(&out.FailingTotal); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT r.name, fs.path, fs.result, coalesce(fs.failing_since, fs.last_checked_at), fs.last_checked_at, fs.detail
			FROM sentry_file_state fs JOIN sentry_releases r ON r.id = fs.release_id
			WHERE fs.mirror_id = $1 AND fs.result NOT IN `+successSQL+`
			ORDER BY r.name, fs.path LIMIT $2`, id, maxFailingFiles)
		if err != nil {
			return err
		}
		for rows.Next() {
			var f FailingFile
			if err := rows.Scan(&f.Release, &f.Path, &f.Kind, &f.FirstSeen, &f.LastSeen, &f.Detail); err != nil {
				rows.Close()
				return err
			}
			out.FailingFiles = append(out.FailingFiles, f)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `
			SELECT at, from_state, to_state, reason, run_id FROM sentry_state_changes
			WHERE mirror_id = $1 AND at >= $2 AND at < $3 ORDER BY at DESC, id DESC LIMIT $4`,
			id, w.Since, w.Until, maxStateChanges)
		if err != nil {
			return err
		}
		for rows.Next() {
			var c StateChange
			if err := rows.Scan(&c.At, &c.From, &c.To, &c.Reason, &c.RunID); err != nil {
				rows.Close()
				return err
			}
			out.History = append(out.History, c)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `
			SELECT vantage, sum(n), coalesce(sum(n) FILTER (WHERE result NOT IN `+successSQL+`), 0)
			FROM sentry_check_hourly WHERE mirror_id = $1 AND hour >= $2 AND hour < $3
			GROUP BY vantage ORDER BY vantage`, id, all.Since, all.Until) // the row's hours: the counts add up to its own
		if err != nil {
			return err
		}
		for rows.Next() {
			var v VantageCount
			if err := rows.Scan(&v.Vantage, &v.Checks, &v.Failures); err != nil {
				rows.Close()
				return err
			}
			out.ByVantage = append(out.ByVantage, v)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return recentFailures(ctx, tx, id, w, out)
	})
	if err != nil {
		return nil, fmt.Errorf("report on mirror %s: %w", name, err)
	}
	return out, nil
}

// recentFailures collapses the window's failures of a mirror into runs:
// a file's checks in time order (successes included) are cut where the
// result or the detail changes, and the pieces that failed are listed.
func recentFailures(ctx context.Context, tx pgx.Tx, id int, w Window, out *MirrorDetail) error {
	rows, err := tx.Query(ctx, `
		WITH c AS (
			SELECT checked_at, coalesce(release_id, 0) AS rel, path, result, detail, `+readSQL+` AS read FROM sentry_checks
			WHERE mirror_id = $1 AND checked_at >= $2 AND checked_at < $3
			ORDER BY checked_at DESC LIMIT $4
		), g AS (
			SELECT *, row_number() OVER (PARTITION BY rel, path ORDER BY checked_at)
			        - row_number() OVER (PARTITION BY rel, path, result, detail ORDER BY checked_at) AS grp
			FROM c
		)
		SELECT coalesce(r.name, ''), g.path, g.result, g.detail, count(*), min(g.checked_at), max(g.checked_at),
		       (array_agg(g.read ORDER BY g.checked_at DESC))[1]
		FROM g LEFT JOIN sentry_releases r ON r.id = g.rel
		WHERE g.result NOT IN `+successSQL+`
		GROUP BY r.name, g.rel, g.path, g.result, g.detail, g.grp
		ORDER BY max(g.checked_at) DESC, g.path LIMIT $5`, id, w.Since, w.Until, maxFailureChecks, maxFailureRuns)
	if err != nil {
		return err
	}
	for rows.Next() {
		var f FailureRun
		if err := rows.Scan(&f.Release, &f.Path, &f.Kind, &f.Detail, &f.Count, &f.First, &f.Last, &f.Read); err != nil {
			rows.Close()
			return err
		}
		out.RecentFailures = append(out.RecentFailures, f)
	}
	return rows.Err()
}

// readSQL says how a check of sentry_checks read the file's bytes (see
// FailureRun.Read).
const readSQL = `CASE WHEN hashed THEN 'in full'
	WHEN sample_blocks IS NOT NULL THEN sample_blocks || ' of ' || file_blocks || ' blocks' ELSE '' END`

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

// Release is the uptake report of one release.
type Release struct {
	Name       string     `json:"release"`
	Files      int        `json:"files"`
	TotalBytes int64      `json:"total_bytes"`
	FirstPrime *time.Time `json:"first_prime"`
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
		err := tx.QueryRow(ctx, `
			SELECT r.id, r.file_count, r.total_bytes,
			       (SELECT min(started_at) FROM sentry_runs WHERE kind = 'prime' AND release_id = r.id),
			       (SELECT count(*) FROM mirror_mirrors WHERE active),
			       (SELECT coalesce(sum(rating), 0) FROM mirror_mirrors WHERE active)
			FROM sentry_releases r WHERE r.name = $1`, name).
			Scan(&id, &out.Files, &out.TotalBytes, &out.FirstPrime, &out.ActiveMirrors, &out.RatingTotal)
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

// Day is one bucket of a mirror's history strip.
type Day struct {
	Start    time.Time `json:"start"`
	Checks   int64     `json:"checks"`
	Failures int64     `json:"failures"`
}

// History returns, for every mirror with checks in the last days days
// (ending now), its checks and failures per day (UTC), oldest first, every
// day present.
func (r *Reporter) History(ctx context.Context, days int) (map[int][]Day, time.Time, error) {
	end := r.now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	start := end.Add(-time.Duration(days) * 24 * time.Hour)
	rows, err := r.pool.Query(ctx, `
		SELECT mirror_id, floor(extract(epoch FROM hour - $1) / 86400)::int AS day,
		       sum(n), coalesce(sum(n) FILTER (WHERE result NOT IN `+successSQL+`), 0)
		FROM sentry_check_hourly WHERE hour >= $1 AND hour < $2
		GROUP BY 1, 2`, start, end)
	if err != nil {
		return nil, start, fmt.Errorf("mirror history: %w", err)
	}
	out := map[int][]Day{}
	for rows.Next() {
		var id, day int
		var d Day
		if err := rows.Scan(&id, &day, &d.Checks, &d.Failures); err != nil {
			rows.Close()
			return nil, start, fmt.Errorf("mirror history: %w", err)
		}
		if day < 0 || day >= days {
			continue
		}
		strip, ok := out[id]
		if !ok {
			strip = make([]Day, days)
			for i := range strip {
				strip[i].Start = start.Add(time.Duration(i) * 24 * time.Hour)
			}
			out[id] = strip
		}
		strip[day].Checks, strip[day].Failures = d.Checks, d.Failures
	}
	if err := rows.Err(); err != nil {
		return nil, start, fmt.Errorf("mirror history: %w", err)
	}
	return out, start, nil
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
