package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/internal/humanize"
)

// TableWidth is the terminal the tables fit: 80 columns, the last one
// unused so that no terminal wraps; wide (--wide): no limit, nothing cut.
func TableWidth(wide bool) int {
	if wide {
		return 1 << 20
	}
	return 79
}

// nameWidth is the width of a table's name column: n, or with wide as
// wide as the longest name.
func nameWidth(n int, wide bool, names func(yield func(string) bool)) int {
	if wide {
		for s := range names {
			n = max(n, utf8.RuneCountInString(s))
		}
	}
	return n
}

// FailureKinds are the failure kinds in the order of docs/CONTRACTS.md,
// section 5 (Failure kinds): the CSV columns and the order kinds are listed in.
func FailureKinds() []string {
	var out []string
	for _, k := range checks.AllKinds() {
		if k.Failed() {
			out = append(out, string(k))
		}
	}
	return out
}

// WriteJSON writes v (a *Mirrors, *MirrorDetail or *Release) as indented
// JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// oneLine keeps a detail on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// ago says how long before now t was ("never" for no time).
func ago(now time.Time, t *time.Time) string {
	if t == nil {
		return "never"
	}
	return humanize.Ago(now.Sub(*t))
}

func stamp(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func windowLine(w Window) string {
	return fmt.Sprintf("%s to %s (UTC)", w.Since.UTC().Format("2006-01-02 15:04"), w.Until.UTC().Format("2006-01-02 15:04"))
}

// byKind lists failure counts as "not_found 3, timeout 1", largest first.
func byKind(m map[string]int64) string {
	type kv struct {
		k string
		n int64
	}
	var l []kv
	for k, n := range m {
		l = append(l, kv{k, n})
	}
	sort.Slice(l, func(i, j int) bool {
		if l[i].n != l[j].n {
			return l[i].n > l[j].n
		}
		return l[i].k < l[j].k
	})
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = fmt.Sprintf("%s %d", e.k, e.n)
	}
	return strings.Join(parts, ", ")
}

// WriteMirrorsTable writes the per-mirror report: a row per mirror (its
// condition: degraded for an up mirror with locations off), why it is down
// or degraded, and under a mirror with failures in the window, its
// failures by kind and its last failure. wide: nothing is cut to fit 80
// columns.
func WriteMirrorsTable(w io.Writer, r *Mirrors, now time.Time, wide bool) error {
	width := TableWidth(wide)
	nw := nameWidth(18, wide, func(yield func(string) bool) {
		for _, m := range r.Mirrors {
			if !yield(m.Name) {
				return
			}
		}
	})
	row := "%-" + strconv.Itoa(nw) + "s %-11s %-8s %7s %6s %5s %5s  %s\n"
	var b strings.Builder
	fmt.Fprintf(&b, "checks from %s\n\n", windowLine(r.Window))
	fmt.Fprintf(&b, row, "MIRROR", "STATE", "SINCE", "CHECKS", "FAIL", "MISS", "CORR", "LAST CHECK")
	for _, m := range r.Mirrors {
		since := ""
		if m.StateSince != nil {
			since = ago(now, m.StateSince)
		}
		fmt.Fprintf(&b, row, humanize.Clip(m.Name, nw), m.Condition(), since, strconv.FormatInt(m.Checks, 10),
			strconv.FormatInt(m.Failures, 10), strconv.FormatInt(m.FilesMissing, 10),
			strconv.FormatInt(m.FilesCorrupt, 10), ago(now, m.LastCheck))
		if note := m.vantageNote(width - 4); note != "" {
			b.WriteString(humanize.Clip("    "+note, width) + "\n")
		}
		if m.ShowsWhy() {
			b.WriteString(humanize.Clip("    why: "+m.Why(), width) + "\n")
		}
		if note := m.TLSNote(now); note != "" {
			b.WriteString(humanize.Clip("    tls: "+note, width) + "\n")
		}
		if m.Failures > 0 {
			b.WriteString(humanize.Clip("    failures: "+byKind(m.FailuresByKind), width) + "\n")
		}
		if f := m.LastFailure; f != nil {
			head := fmt.Sprintf("    last: %s %s ", ago(now, &f.At), f.Kind)
			room := width - utf8.RuneCountInString(head)
			detail := oneLine(f.Detail)
			where := f.Path
			if where == "" {
				where = "(mirror)"
			}
			// The path gets up to half the room, the detail the rest.
			p := humanize.ClipLeft(where, max(room/2, room-utf8.RuneCountInString(detail)-2))
			b.WriteString(head + p + humanize.Clip(": "+detail, room-utf8.RuneCountInString(p)) + "\n")
		}
	}
	b.WriteString("\nMISS: files missing (not_found, forbidden, not_primed); CORR: files corrupt\n" +
		"(size_mismatch, checksum_mismatch, truncated, too_large), as last checked.\n")
	for _, m := range r.Mirrors {
		if m.VantageNote() != "" {
			b.WriteString("(n/m): failed from n of the m vantage points that checked it at its last sweep;\n" +
				"partial: up all the same, n being under the quorum that marks a mirror down.\n")
			break
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMirrorTable writes the report on one mirror: its row, its failing
// files and its state history. wide: nothing is cut to fit 80 columns.
func WriteMirrorTable(w io.Writer, r *MirrorDetail, now time.Time, wide bool) error {
	width := TableWidth(wide)
	m := r.Mirror
	var b strings.Builder
	b.WriteString(humanize.Clip("mirror "+m.Name, width) + "\n" + humanize.Clip(m.BaseURL, width) + "\n")
	fmt.Fprintf(&b, "id %d, rating %d, %s", m.ID, m.Rating, m.Condition())
	if m.StateSince != nil {
		fmt.Fprintf(&b, " since %s (%s)", m.StateSince.UTC().Format("2006-01-02 15:04"), ago(now, m.StateSince))
	}
	b.WriteString("\n")
	if m.ShowsWhy() {
		for _, l := range wrap("why: "+m.Why(), width) {
			b.WriteString(l + "\n")
		}
	}
	if note := m.TLSNote(now); note != "" {
		for _, l := range wrap("tls: "+note, width) {
			b.WriteString(l + "\n")
		}
	}
	for _, l := range wrap(m.VantageWords(), width) {
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(&b, "checks from %s\n", windowLine(r.Window))
	line := fmt.Sprintf("  %d checks, %d failed", m.Checks, m.Failures)
	if m.Failures > 0 {
		line += " (" + byKind(m.FailuresByKind) + ")"
	}
	b.WriteString(humanize.Clip(line, width) + "\n")
	if len(r.ByVantage) > 1 {
		for _, v := range r.ByVantage {
			b.WriteString(humanize.Clip(fmt.Sprintf("    from %s: %d checks, %d failed", oneLine(v.Vantage), v.Checks, v.Failures), width) + "\n")
		}
	}
	fmt.Fprintf(&b, "last check %s\n\n", ago(now, m.LastCheck))

	fmt.Fprintf(&b, "failing files: %d", r.FailingTotal)
	if int64(len(r.FailingFiles)) < r.FailingTotal {
		fmt.Fprintf(&b, " (the first %d listed)", len(r.FailingFiles))
	}
	b.WriteString("\n")
	if len(r.FailingFiles) > 0 {
		const row = "%-10s %-17s %-8s %-8s %s\n"
		fmt.Fprintf(&b, row, "RELEASE", "KIND", "FIRST", "LAST", "PATH")
		for _, f := range r.FailingFiles {
			line := fmt.Sprintf(row, humanize.Clip(f.Release, 10), f.Kind, ago(now, &f.FirstSeen), ago(now, &f.LastSeen), "")
			line = strings.TrimSuffix(line, "\n")
			b.WriteString(line + humanize.ClipLeft(f.Path, width-utf8.RuneCountInString(line)) + "\n")
			if d := oneLine(f.Detail); d != "" {
				b.WriteString(humanize.Clip("    "+d, width) + "\n")
			}
		}
	}
	fmt.Fprintf(&b, "\nstate changes from %s: %d\n", windowLine(r.Window), len(r.History))
	for _, c := range r.History {
		head := fmt.Sprintf("%s %s→%s ", c.At.UTC().Format("2006-01-02 15:04"), c.From, c.To)
		b.WriteString(head + humanize.Clip(oneLine(c.Reason), width-utf8.RuneCountInString(head)) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// wrap breaks s into lines of at most n columns at spaces (a word longer
// than a line is clipped); "" gives no line.
func wrap(s string, n int) []string {
	var out []string
	line := ""
	for _, word := range strings.Fields(s) {
		switch {
		case line == "":
			line = word
		case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) <= n:
			line += " " + word
		default:
			out = append(out, humanize.Clip(line, n))
			line = word
		}
	}
	if line != "" {
		out = append(out, humanize.Clip(line, n))
	}
	return out
}

func percent(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", *v*100)
}

// WriteReleaseTable writes a release's uptake: the totals, each mirror's
// progress and each file's spread. wide: nothing is cut to fit 80 columns.
func WriteReleaseTable(w io.Writer, r *Release, now time.Time, wide bool) error {
	width := TableWidth(wide)
	var b strings.Builder
	fmt.Fprintf(&b, "release %s: %d files, %d bytes", r.Name, r.Files, r.TotalBytes)
	if r.FirstPrime != nil {
		fmt.Fprintf(&b, ", first primed %s (%s)", r.FirstPrime.UTC().Format("2006-01-02 15:04"), ago(now, r.FirstPrime))
	}
	fmt.Fprintf(&b, "\n%d of %d active mirrors hold every file verified; rating-weighted uptake %s\n",
		r.Complete, r.ActiveMirrors, percent(r.Weighted))
	b.WriteString(signedLines(r.Signature, now, width) + "\n")

	nw := nameWidth(24, wide, func(yield func(string) bool) {
		for _, m := range r.Mirrors {
			if !yield(m.Name + " (inactive)") {
				return
			}
		}
	})
	mrow := "%-" + strconv.Itoa(nw) + "s %6s %8s %8s %7s %s\n"
	fmt.Fprintf(&b, mrow, "MIRROR", "RATING", "VERIFIED", "HOLDING", "SAMPLED", "TIME TO VERIFIED")
	for _, m := range r.Mirrors {
		took := "-"
		if m.Seconds != nil {
			took = humanize.Duration(time.Duration(*m.Seconds * float64(time.Second)))
		}
		name := m.Name
		if !m.Active {
			name += " (inactive)"
		}
		fmt.Fprintf(&b, mrow, humanize.Clip(name, nw), strconv.Itoa(m.Rating), fmt.Sprintf("%d/%d", m.Verified, r.Files),
			fmt.Sprintf("%d/%d", m.Holding, r.Files), strconv.Itoa(m.Sampled), took)
	}
	b.WriteString("\n")
	const frow = "%7s %8s  %s\n"
	fmt.Fprintf(&b, frow, "MIRRORS", "WEIGHTED", "FILE")
	for _, f := range r.FileList {
		line := strings.TrimSuffix(fmt.Sprintf(frow, fmt.Sprintf("%d/%d", f.Mirrors, r.ActiveMirrors), percent(f.Weighted), ""), "\n")
		b.WriteString(line + humanize.ClipLeft(f.Path, width-utf8.RuneCountInString(line)) + "\n")
	}
	if r.Truncated {
		fmt.Fprintf(&b, "(only the first %d files listed)\n", len(r.FileList))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// signedLines say who signed a release's manifest: the user id and when,
// then the key's fingerprint on a line of its own.
func signedLines(s *Signature, now time.Time, width int) string {
	if s == nil {
		return "manifest not signed (recorded without releases.signature)\n"
	}
	who := s.UserID
	if who == "" {
		who = "a key without a user id"
	}
	line := "manifest signed by " + who
	if !s.SignedAt.IsZero() {
		line += fmt.Sprintf(", on %s (%s)", s.SignedAt.UTC().Format("2006-01-02 15:04"), ago(now, &s.SignedAt))
	}
	out := humanize.Wrap(line, width, "    ") + "\n    key " + s.Fingerprint + "\n"
	if s.SigningKey != "" {
		out += "    subkey " + s.SigningKey + "\n"
	}
	return out
}

// WriteMirrorsCSV writes the per-mirror report as CSV: a header, then one
// record per mirror with a column per failure kind; failing_from and
// checked_from list vantage points separated by ";".
func WriteMirrorsCSV(w io.Writer, r *Mirrors) error {
	kinds := FailureKinds()
	cw := csv.NewWriter(w)
	head := []string{"id", "name", "baseurl", "rating", "state", "state_since", "checks", "failures"}
	for _, k := range kinds {
		head = append(head, "failures_"+k)
	}
	head = append(head, "files_missing", "files_corrupt", "last_failure_at", "last_failure_kind",
		"last_failure_path", "last_failure_detail", "last_check", "failing_from", "checked_from", "partial")
	head = append(head, mirrorRowColumns...)
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, m := range r.Mirrors {
		rec := []string{strconv.Itoa(m.ID), m.Name, m.BaseURL, strconv.Itoa(m.Rating), m.State, stamp(m.StateSince),
			strconv.FormatInt(m.Checks, 10), strconv.FormatInt(m.Failures, 10)}
		for _, k := range kinds {
			rec = append(rec, strconv.FormatInt(m.FailuresByKind[k], 10))
		}
		rec = append(rec, strconv.FormatInt(m.FilesMissing, 10), strconv.FormatInt(m.FilesCorrupt, 10))
		if f := m.LastFailure; f != nil {
			rec = append(rec, stamp(&f.At), f.Kind, f.Path, f.Detail)
		} else {
			rec = append(rec, "", "", "", "")
		}
		rec = append(rec, stamp(m.LastCheck), strings.Join(m.FailingFrom, ";"), strings.Join(m.CheckedFrom, ";"),
			strconv.FormatBool(m.Partial))
		rec = append(rec, mirrorRowRecord(&m)...)
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteMirrorCSV writes one mirror's report as CSV: a record per failing
// file (record "file"), per state change ("state_change"), per run of
// recent failures ("failure") and per vantage point's counts ("vantage"),
// each filling its own columns (mirrorDetailColumns).
func WriteMirrorCSV(w io.Writer, r *MirrorDetail) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(mirrorDetailColumns)
	for _, f := range r.FailingFiles {
		_ = cw.Write(detailRecord("file", map[string]string{"release": f.Release, "path": f.Path, "kind": f.Kind,
			"first_seen": stamp(&f.FirstSeen), "last_seen": stamp(&f.LastSeen), "detail": f.Detail, "failed_over": f.FailedOver}))
	}
	for _, c := range r.History {
		run := ""
		if c.RunID != nil {
			run = strconv.FormatInt(*c.RunID, 10)
		}
		_ = cw.Write(detailRecord("state_change", map[string]string{"at": stamp(&c.At), "from": c.From, "to": c.To,
			"reason": c.Reason, "run_id": run}))
	}
	for _, f := range r.RecentFailures {
		_ = cw.Write(detailRecord("failure", map[string]string{"release": f.Release, "path": f.Path, "kind": f.Kind,
			"detail": f.Detail, "count": strconv.FormatInt(f.Count, 10), "first": stamp(&f.First), "last": stamp(&f.Last),
			"read": f.Read}))
	}
	for _, v := range r.ByVantage {
		_ = cw.Write(detailRecord("vantage", map[string]string{"vantage": v.Vantage, "checks": strconv.FormatInt(v.Checks, 10),
			"failures": strconv.FormatInt(v.Failures, 10)}))
	}
	cw.Flush()
	return cw.Error()
}

func optFloat(v *float64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'f', 4, 64)
}

// WriteReleaseCSV writes a release's uptake as CSV: who signed its
// manifest (record "signature", when signed: name is the key's user id,
// and the last three columns are filled), a record per file (record
// "file") and per mirror (record "mirror").
func WriteReleaseCSV(w io.Writer, r *Release) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"record", "name", "size", "mirrors", "weighted_uptake", "rating", "files_verified",
		"files_holding", "verified_at", "seconds_to_verified", "files_sampled", "signer_fingerprint", "signing_key", "signed_at",
		"id", "active"})
	if s := r.Signature; s != nil {
		_ = cw.Write([]string{"signature", s.UserID, "", "", "", "", "", "", "", "", "", s.Fingerprint, s.SigningKey, stamp(&s.SignedAt),
			"", ""})
	}
	for _, f := range r.FileList {
		_ = cw.Write([]string{"file", f.Path, strconv.FormatInt(f.Size, 10), strconv.Itoa(f.Mirrors), optFloat(f.Weighted),
			"", "", "", "", "", "", "", "", "", "", ""})
	}
	for _, m := range r.Mirrors {
		_ = cw.Write([]string{"mirror", m.Name, "", "", "", strconv.Itoa(m.Rating), strconv.Itoa(m.Verified),
			strconv.Itoa(m.Holding), stamp(m.VerifiedAt), optFloat(m.Seconds), strconv.Itoa(m.Sampled), "", "", "",
			strconv.Itoa(m.ID), strconv.FormatBool(m.Active)})
	}
	cw.Flush()
	return cw.Error()
}
