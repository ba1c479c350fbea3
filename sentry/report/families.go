package report

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mirrorsentry/sentry/checks"
)

// What the views say of a dual-stack mirror broken over an address
// family (familiesWhy), and of one whose files fail over one address
// family alone (sentry_file_state.failed_over, set by the primes
// and sweeps that check each file over each family): "1 file missing
// over IPv6 only".

// FamilyFailure counts the release files failing over one address family
// alone, while another family of the mirror serves them right.
type FamilyFailure struct {
	Family string `json:"family"` // ipv4, ipv6
	// Missing counts those missing over it (not_found, forbidden,
	// not_primed), Wrong those of another size or content (size_mismatch,
	// checksum_mismatch, truncated, too_large).
	Missing int64 `json:"missing"`
	Wrong   int64 `json:"wrong"`
	// First is the first of them, by release and path.
	First string `json:"first"`
}

// familyFailuresSQL is a mirror's (m.id) FamilyFailure list as JSON,
// through the partial index on failed_over: a few rows at most.
const familyFailuresSQL = `coalesce((SELECT jsonb_agg(jsonb_build_object('family', f.failed_over, 'missing', f.missing,
		'wrong', f.wrong, 'first', f.first) ORDER BY f.failed_over)
	FROM (SELECT failed_over, count(*) FILTER (WHERE result IN ` + missingSQL + `) AS missing,
	             count(*) FILTER (WHERE result IN ` + corruptSQL + `) AS wrong, min(path) AS first
	      FROM sentry_file_state WHERE mirror_id = m.id AND failed_over <> ''
	        AND (result IN ` + missingSQL + ` OR result IN ` + corruptSQL + `)
	      GROUP BY failed_over) f), '[]')`

// Words say it in a line: "1 file missing over IPv6 only
// (win32/de/Firefox Setup 1.5.exe)", "2 files missing and 1 wrong over
// IPv6 only (…)".
func (f FamilyFailure) Words() string {
	var s string
	switch {
	case f.Missing > 0 && f.Wrong > 0:
		s = fmt.Sprintf("%d %s missing and %d wrong", f.Missing, pluralFiles(f.Missing), f.Wrong)
	case f.Missing > 0:
		s = fmt.Sprintf("%d %s missing", f.Missing, pluralFiles(f.Missing))
	default:
		s = fmt.Sprintf("%d %s wrong", f.Wrong, pluralFiles(f.Wrong))
	}
	s += " over " + checks.Family(f.Family).Label() + " only"
	if f.First != "" {
		more := ""
		if f.Missing+f.Wrong > 1 {
			more = ", …"
		}
		s += " (" + f.First + more + ")"
	}
	return s
}

func pluralFiles(n int64) string {
	if n == 1 {
		return "file"
	}
	return "files"
}

// settleFamilies adds the families the mirror's files fail over alone to
// the families it is broken over: the mirror is broken over a family
// whose users miss files (or get them wrong) as much as over one that
// does not answer.
func (m *MirrorRow) settleFamilies() {
	if m.FamilyFailures == nil {
		m.FamilyFailures = []FamilyFailure{}
	}
	for _, f := range m.FamilyFailures {
		if !slices.Contains(m.BrokenFamilies, f.Family) {
			m.BrokenFamilies = append(m.BrokenFamilies, f.Family)
		}
	}
	m.BrokenFamilies = sortedSet(m.BrokenFamilies)
}

// familyFailuresWhy says what fails over one family alone, "" for
// nothing.
func (m MirrorRow) familyFailuresWhy() string {
	parts := make([]string, len(m.FamilyFailures))
	for i, f := range m.FamilyFailures {
		parts[i] = f.Words()
	}
	return strings.Join(parts, "; ")
}

// failingOver reports whether family f is one the mirror's files fail
// over alone.
func (m MirrorRow) failingOver(f string) bool {
	return slices.ContainsFunc(m.FamilyFailures, func(ff FamilyFailure) bool { return ff.Family == f })
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
