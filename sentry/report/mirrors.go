package report

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mirrorsentry/sentry/checks/safetext"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// missingSQL and corruptSQL group the file failures the report counts as
// "missing" (the mirror does not have the file) and "corrupt" (it has
// something else under its name).
const (
	missingSQL = `('not_found', 'forbidden', 'not_primed')`
	corruptSQL = `('size_mismatch', 'checksum_mismatch', 'truncated', 'too_large')`
)

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
	// FamilyFailures are its release files failing over one address
	// family alone while another serves them right, by family ("missing
	// over IPv6 only"): that family is among BrokenFamilies, and the
	// files' locations are off. Never null.
	FamilyFailures []FamilyFailure `json:"family_failures"`
	// TLS is the certificate of an https mirror at its last sweep, nil
	// for none.
	TLS *TLSInfo `json:"tls"`
	// Maintenance is the maintenance window holding now, nil for none:
	// the mirror's condition is "maintenance". Returning: its window is
	// over and it is being re-verified (offered only for files hashed
	// since the window began).
	Maintenance *MaintenanceInfo `json:"maintenance"`
	Returning   bool             `json:"returning"`
	// NotOffered says why the redirector never offers this active mirror
	// for any request (no region row, a base URL of neither scheme: its
	// verified files are capacity no user gets), "" when it may; and
	// NeverVerified that sentry never verified a file on it, so vouches
	// for none of its rows (offer.go).
	NotOffered    string `json:"not_offered"`
	NeverVerified bool   `json:"never_verified"`
	notOffered    decide.Offer
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
		if f := m.familyFailuresWhy(); f != "" {
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

// ShowsWhy says whether the views give a line of why under the mirror: it
// is down, degraded or in maintenance.
func (m MirrorRow) ShowsWhy() bool {
	return m.State == "down" || m.Degraded || m.Condition() == "maintenance"
}

// offSQL is what makes an up mirror degraded, defined once for every
// view: store.OffLocationsSQL.
const offSQL = store.OffLocationsSQL

// settle fills what a row's state decides once it is read.
func (m *MirrorRow) settle(active bool, state *string) {
	// A base URL may carry a user and password for the mirror: requests
	// use them, no report shows them.
	m.BaseURL = safetext.URL(m.BaseURL)
	m.State = stateOf(active, state)
	if m.State == "disabled" || m.State == "unknown" {
		m.StateSince = nil
	}
	m.FailingFrom, m.CheckedFrom = sortedSet(m.FailingFrom), sortedSet(m.CheckedFrom)
	m.Partial = m.State == "up" && len(m.FailingFrom) > 0 && len(m.ReachableFrom()) > 0
	if m.OffLocations == nil || m.State != "up" {
		m.OffLocations = []string{}
	}
	m.settleFamilies()
	if m.State != "up" {
		m.BrokenFamilies, m.FamilyFailures = []string{}, []FamilyFailure{}
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
		       ms.last_check, coalesce(ms.last_reason, ''), coalesce(off.n, 0), off.paths`+adminCols+offerCols+`
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
		var o offerScan
		if err := rows.Scan(append(append([]any{&m.ID, &m.Name, &m.BaseURL, &m.Rating, &active, &state, &m.StateSince, &m.FailingFrom,
			&m.CheckedFrom, &m.LastSweep, &m.LastReason, &m.LocationsOff, &m.OffLocations}, a.dest()...), o.dest()...)...); err != nil {
			rows.Close()
			return nil, fmt.Errorf("mirror states: %w", err)
		}
		m.settleAdmin(&a, r.now())
		m.settle(active, state)
		m.settleOffer(&o)
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
		       ms.last_check, coalesce(ms.last_reason, ''), coalesce(off.n, 0), off.paths`+adminCols+offerCols+`
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
		var o offerScan
		if err := rows.Scan(append(append([]any{&m.ID, &m.Name, &m.BaseURL, &m.Rating, &active, &state, &m.StateSince,
			&m.FailingFrom, &m.CheckedFrom, &m.Checks, &m.Failures, &m.FailuresByKind, &m.FilesMissing, &m.FilesCorrupt,
			&lfAt, &lfKind, &lfPath, &lfDetail, &m.LastCheck, &m.LastSweep, &m.LastReason, &m.LocationsOff, &m.OffLocations},
			a.dest()...), o.dest()...)...); err != nil {
			rows.Close()
			return nil, fmt.Errorf("mirror report: %w", err)
		}
		m.settleAdmin(&a, r.now())
		m.settle(active, state)
		m.settleOffer(&o)
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
