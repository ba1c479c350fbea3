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
	"github.com/mirrorsentry/sentry/checks/safetext"
	"github.com/mirrorsentry/sentry/sentry/internal/humanize"
)

// The outputs of this file are for people (tables, CSV) or for programs
// that show them to people (JSON): every field is made safe on the way
// out (safetext), whoever wrote it — a mirror's headers, an admin's
// mirror name. Tables clip fields only once they are safe (humanize),
// and pass whole through safetext.Lines; CSV cells go through
// safetext.Cell (no formulas); JSON keeps every value exact but escapes
// what a terminal or a page would act on (safetext.EscapeJSON).

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
			n = max(n, humanize.Width(s))
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
// JSON, the characters a terminal or a page would act on escaped
// (safetext.EscapeJSON).
func WriteJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(safetext.EscapeJSON(b), '\n'))
	return err
}

// writeTable writes a table built in full, made safe as a whole: the
// fields were, one by one, before they were clipped; this holds for
// those that needed no clip too.
func writeTable(w io.Writer, b *strings.Builder) error {
	_, err := io.WriteString(w, safetext.Lines(b.String()))
	return err
}

// csvWriter writes CSV records whose cells are made safe for a
// spreadsheet (safetext.Cell).
type csvWriter struct{ *csv.Writer }

func newCSV(w io.Writer) csvWriter { return csvWriter{csv.NewWriter(w)} }

func (c csvWriter) Write(rec []string) error {
	for i := range rec {
		rec[i] = safetext.Cell(rec[i])
	}
	return c.Writer.Write(rec)
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
		if note := m.OfferNote(); note != "" {
			b.WriteString(humanize.Clip("    offer: "+note, width) + "\n")
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
	return writeTable(w, &b)
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
	if note := m.OfferNote(); note != "" {
		for _, l := range wrap("offer: "+note, width) {
			b.WriteString(l + "\n")
		}
	}
	for _, e := range r.LangExceptions {
		for _, l := range wrap(e.Note(), width) {
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
	return writeTable(w, &b)
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
	b.WriteString("\n")
	for _, l := range wrap(fmt.Sprintf("%d of %d mirrors the redirector can offer for it hold every file verified; rating-weighted uptake %s",
		r.Complete, r.OfferableMirrors, percent(r.Weighted)), width) {
		b.WriteString(l + "\n")
	}
	if len(r.Products) > 0 {
		ps := make([]string, len(r.Products))
		for i, p := range r.Products {
			ps[i] = p.Name
			if p.SSLOnly {
				ps[i] += " (ssl_only: https:// mirrors)"
			}
			if !p.Active {
				ps[i] += " (inactive)"
			}
		}
		for _, l := range wrap("products: "+strings.Join(ps, ", "), width) {
			b.WriteString(l + "\n")
		}
	}
	b.WriteString(capacityLines(r.Capacity))
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
		note := ""
		switch {
		case m.NotOffered != "":
			note = "not offered: " + m.NotOffered
		case m.Active && !m.Counted:
			note = "not counted: offered only to users of another scheme than its products need"
		}
		for _, l := range wrap(note, width-4) {
			b.WriteString("    " + l + "\n")
		}
	}
	b.WriteString("\n")
	const frow = "%7s %8s  %s\n"
	fmt.Fprintf(&b, frow, "MIRRORS", "WEIGHTED", "FILE")
	for _, f := range r.FileList {
		line := strings.TrimSuffix(fmt.Sprintf(frow, fmt.Sprintf("%d/%d", f.Mirrors, r.OfferableMirrors), percent(f.Weighted), ""), "\n")
		b.WriteString(line + humanize.ClipLeft(f.Path, width-utf8.RuneCountInString(line)) + "\n")
	}
	if r.Truncated {
		fmt.Fprintf(&b, "(only the first %d files listed)\n", len(r.FileList))
	}
	if len(r.WithoutGoodCopy) > 0 {
		b.WriteString("\n")
		for _, l := range wrap(fmt.Sprintf("%d locations without a good copy the redirector can offer (its users get the fallback or no mirror):",
			len(r.WithoutGoodCopy)), width) {
			b.WriteString(l + "\n")
		}
		for _, l := range r.WithoutGoodCopy {
			head := fmt.Sprintf("  %-5s users, %s: ", l.Scheme, humanize.Clip(l.Product, 24))
			b.WriteString(head + humanize.ClipLeft(l.Path, width-utf8.RuneCountInString(head)) + "\n")
		}
	}
	return writeTable(w, &b)
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
	cw := newCSV(w)
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
	cw := newCSV(w)
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
	cw := newCSV(w)
	_ = cw.Write(releaseColumns)
	if s := r.Signature; s != nil {
		_ = cw.Write(releaseRecord("signature", map[string]string{"name": s.UserID, "signer_fingerprint": s.Fingerprint,
			"signing_key": s.SigningKey, "signed_at": stamp(&s.SignedAt)}))
	}
	for _, f := range r.FileList {
		_ = cw.Write(releaseRecord("file", map[string]string{"name": f.Path, "size": strconv.FormatInt(f.Size, 10),
			"mirrors": strconv.Itoa(f.Mirrors), "weighted_uptake": optFloat(f.Weighted)}))
	}
	for _, m := range r.Mirrors {
		_ = cw.Write(releaseRecord("mirror", map[string]string{"name": m.Name, "rating": strconv.Itoa(m.Rating),
			"files_verified": strconv.Itoa(m.Verified), "files_holding": strconv.Itoa(m.Holding), "verified_at": stamp(m.VerifiedAt),
			"seconds_to_verified": optFloat(m.Seconds), "files_sampled": strconv.Itoa(m.Sampled),
			"counted": strconv.FormatBool(m.Counted), "not_offered": m.NotOffered, "id": strconv.Itoa(m.ID),
			"active": strconv.FormatBool(m.Active)}))
	}
	cw.Flush()
	return cw.Error()
}
