package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/mirrorsentry/sentry/checks"
)

// What the views say of a mirror for its admin: its certificate, the
// address families it is broken over, its maintenance window and its
// return.

// TLSInfo is the certificate an https mirror showed at its last sweep.
type TLSInfo struct {
	Host      string    `json:"host"`
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Names     []string  `json:"names"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// Error is why it failed verification (expired, untrusted, another
	// name): the mirror's checks fail with tls. "" when it verified.
	Error string `json:"error"`
	// Warning: it verified, and ends within checks.tls_expiry_warning:
	// the mirror stays offered, its admin is told.
	Warning bool `json:"warning"`
	// SeenAt is when sentry first saw this certificate (with this
	// verdict).
	SeenAt time.Time `json:"seen_at"`
}

// MaintenanceInfo is a maintenance window holding now.
type MaintenanceInfo struct {
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
}

// Line is the window in one line: "maintenance until 2026-11-25 18:00
// UTC, disk swap".
func (w *MaintenanceInfo) Line() string {
	s := "maintenance until " + w.Until.UTC().Format("2006-01-02 15:04 UTC")
	if w.Reason != "" {
		s += ", " + oneLine(w.Reason)
	}
	return s
}

// adminCols and adminJoins add what the views say for admins to a query
// over mirror_mirrors m and sentry_mirror_state ms; adminScan reads them.
const (
	adminCols = `, coalesce(ms.broken_families, '{}'), ms.suspended_at, mw.since, mw.until, coalesce(mw.reason, ''),
		tls.host, tls.subject, tls.issuer, tls.names, tls.not_before, tls.not_after, tls.error, tls.seen_at, tls.warned_at,
		` + familyFailuresSQL
	adminJoins = `
		LEFT JOIN sentry_maintenance mw ON mw.mirror_id = m.id
		LEFT JOIN sentry_mirror_tls tls ON tls.mirror_id = m.id`
)

// adminScan is what adminCols read.
type adminScan struct {
	broken                             []string
	suspended, mSince, mUntil          *time.Time
	mReason                            string
	host, subject, issuer, tlsErr      *string
	names                              []string
	notBefore, notAfter, seen, warnedA *time.Time
	families                           []FamilyFailure
}

func (a *adminScan) dest() []any {
	return []any{&a.broken, &a.suspended, &a.mSince, &a.mUntil, &a.mReason, &a.host, &a.subject, &a.issuer, &a.names,
		&a.notBefore, &a.notAfter, &a.tlsErr, &a.seen, &a.warnedA, &a.families}
}

// settleAdmin fills the row's admin fields at now; before settle.
func (m *MirrorRow) settleAdmin(a *adminScan, now time.Time) {
	m.BrokenFamilies = sortedSet(a.broken)
	m.FamilyFailures = a.families
	m.Returning = a.suspended != nil
	if a.mSince != nil && !now.Before(*a.mSince) && now.Before(*a.mUntil) {
		m.Maintenance = &MaintenanceInfo{Since: *a.mSince, Until: *a.mUntil, Reason: a.mReason}
		m.Returning = false
	}
	if a.host != nil {
		t := &TLSInfo{Host: *a.host, Subject: *a.subject, Issuer: *a.issuer, Names: a.names, NotBefore: *a.notBefore,
			NotAfter: *a.notAfter, Error: *a.tlsErr, SeenAt: *a.seen}
		if t.Names == nil {
			t.Names = []string{}
		}
		t.Warning = a.warnedA != nil && t.Error == "" && now.Before(t.NotAfter)
		m.TLS = t
	}
}

// TLSNote says what is to know of the mirror's certificate, "" when all
// is well: "certificate expires in 5 days (2026-12-01 12:00 UTC), issued
// by CN=…", or why it fails.
func (m MirrorRow) TLSNote(now time.Time) string {
	t := m.TLS
	switch {
	case t == nil:
		return ""
	case t.Error != "":
		return "certificate of " + t.Host + ": " + oneLine(t.Error)
	case t.Warning:
		return fmt.Sprintf("certificate of %s %s (%s), issued by %s", t.Host, checks.ExpiresIn(t.NotAfter, now),
			t.NotAfter.UTC().Format("2006-01-02 15:04 UTC"), oneLine(t.Issuer))
	}
	return ""
}

// familiesWhy says which families an up mirror is broken over.
// (A family its files fail over alone says so itself: familyFailuresWhy.)
func (m MirrorRow) familiesWhy() string {
	var labels []string
	for _, f := range m.BrokenFamilies {
		if !m.failingOver(f) {
			labels = append(labels, checks.Family(f).Label())
		}
	}
	if len(labels) == 0 {
		return ""
	}
	return "broken over " + strings.Join(labels, " and ") + " (reached over the other family; offered still)"
}

// ShowsWhy says whether the views give a line of why under the mirror: it
// is down, degraded or in maintenance.
func (m MirrorRow) ShowsWhy() bool {
	return m.State == "down" || m.Degraded || m.Condition() == "maintenance"
}
