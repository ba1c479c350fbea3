package report

import "time"

// What a mirror's row reads for its admin, beside its state: the address
// families it is broken over (and those its files fail over), its return,
// its maintenance window and its certificate, in one query with the rest.

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
