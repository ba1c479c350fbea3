package report

import (
	"slices"
	"strconv"
	"strings"
)

// The CSV reports carry every field their JSON has (csvfields_test.go
// derives the list from the JSON tags). The columns here follow the
// columns of before, so that a script reading those by position keeps
// working: nested objects are flattened as OBJECT_FIELD (tls_not_after),
// lists are joined with ";" (a list of objects as a column per field,
// family_failures_missing, each joined so), absent values are empty.

// mirrorRowColumns are the columns of a mirror row after "partial".
var mirrorRowColumns = []string{"last_sweep", "last_reason", "degraded", "locations_off", "off_locations",
	"broken_families", "family_failures_family", "family_failures_missing", "family_failures_wrong", "family_failures_first", "tls_host", "tls_subject", "tls_issuer", "tls_names", "tls_not_before", "tls_not_after",
	"tls_error", "tls_warning", "tls_seen_at", "maintenance_since", "maintenance_until", "maintenance_reason", "returning",
	"not_offered", "never_verified"}

// mirrorRowRecord is m's values of mirrorRowColumns.
func mirrorRowRecord(m *MirrorRow) []string {
	rec := []string{stamp(m.LastSweep), m.LastReason, strconv.FormatBool(m.Degraded), strconv.FormatInt(m.LocationsOff, 10),
		strings.Join(m.OffLocations, ";"), strings.Join(m.BrokenFamilies, ";")}
	var fam, missing, wrong, first []string // one per family, in the same order
	for _, f := range m.FamilyFailures {
		fam, missing, wrong = append(fam, f.Family), append(missing, strconv.FormatInt(f.Missing, 10)), append(wrong, strconv.FormatInt(f.Wrong, 10))
		first = append(first, f.First)
	}
	rec = append(rec, strings.Join(fam, ";"), strings.Join(missing, ";"), strings.Join(wrong, ";"), strings.Join(first, ";"))
	if t := m.TLS; t != nil {
		rec = append(rec, t.Host, t.Subject, t.Issuer, strings.Join(t.Names, ";"), stamp(&t.NotBefore), stamp(&t.NotAfter),
			t.Error, strconv.FormatBool(t.Warning), stamp(&t.SeenAt))
	} else {
		rec = append(rec, "", "", "", "", "", "", "", "", "")
	}
	if w := m.Maintenance; w != nil {
		rec = append(rec, stamp(&w.Since), stamp(&w.Until), w.Reason)
	} else {
		rec = append(rec, "", "", "")
	}
	return append(rec, strconv.FormatBool(m.Returning), m.NotOffered, strconv.FormatBool(m.NeverVerified))
}

// mirrorDetailColumns are the columns of one mirror's CSV report: the
// record's type, then those of every record type (a record fills its own).
var mirrorDetailColumns = []string{"record", "release", "path", "kind", "first_seen", "last_seen", "at", "from", "to",
	"detail", "reason", "run_id", "count", "first", "last", "read", "vantage", "checks", "failures", "failed_over"}

// detailRecord is a record of one mirror's CSV report, of type kind,
// holding values by column.
func detailRecord(kind string, values map[string]string) []string {
	return record(mirrorDetailColumns, kind, values)
}

// releaseColumns are the columns of a release's CSV report: the record's
// type, then those of every record type (a record fills its own). New
// columns go after the old ones, for scripts that read by position.
var releaseColumns = []string{"record", "name", "size", "mirrors", "weighted_uptake", "rating", "files_verified",
	"files_holding", "verified_at", "seconds_to_verified", "files_sampled", "counted", "not_offered",
	"signer_fingerprint", "signing_key", "signed_at", "id", "active"}

// releaseRecord is a record of a release's CSV report, of type kind,
// holding values by column.
func releaseRecord(kind string, values map[string]string) []string {
	return record(releaseColumns, kind, values)
}

// record is a CSV record of type kind (its first column) under columns,
// holding values by column name.
func record(columns []string, kind string, values map[string]string) []string {
	rec := make([]string, len(columns))
	rec[0] = kind
	for c, v := range values {
		i := slices.Index(columns, c)
		if i < 1 {
			panic("report: the CSV has no column " + c) // a writer's mistake, found by its tests
		}
		rec[i] = v
	}
	return rec
}
