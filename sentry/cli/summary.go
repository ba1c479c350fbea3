package cli

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mirrorsentry/sentry/checks/safetext"
	"github.com/mirrorsentry/sentry/sentry/internal/humanize"
	"github.com/mirrorsentry/sentry/sentry/prime"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/sweep"
)

// writeJSON writes a report as one indented JSON document (the shapes
// docs/commands.md documents), as report.WriteJSON does: what a terminal
// would act on is escaped.
func writeJSON(w io.Writer, v any) error { return report.WriteJSON(w, v) }

// nameColumn is the width of a table's mirror column: 16, or with --wide
// the longest name of the rows (once made safe).
func nameColumn[T any](wide bool, rows []T, name func(T) string) int {
	n := 16
	for _, r := range rows {
		if wide {
			n = max(n, humanize.Width(name(r)))
		}
	}
	return n
}

// writeTable writes a table built in full, made safe as a whole (its
// fields were, one by one, before they were clipped: humanize).
func writeTable(w io.Writer, b *strings.Builder) error {
	_, err := io.WriteString(w, safetext.Lines(b.String()))
	return err
}

// writePrimeTable writes the per-mirror summary as a table that fits an
// 80-column terminal (with wide, as wide as its contents), then the run's
// outcome and anything not marked.
func writePrimeTable(w io.Writer, r *prime.Report, wide bool) error {
	width := report.TableWidth(wide)
	nw := nameColumn(wide, r.Mirrors, func(m prime.MirrorSums) string { return m.Name })
	head := "%-" + fmt.Sprint(nw) + "s %-7s %-7s %5s %5s %9s %6s %s\n"
	var b strings.Builder
	fmt.Fprintf(&b, "release %s: %d files, %d locations, %d mirrors (run %d)\n",
		r.Release, r.Files, r.Locations, len(r.Mirrors), r.RunID)
	if r.Joined {
		fmt.Fprintf(&b, "(a prime of %s was already running: this command helped and waited)\n", r.Release)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, head, "MIRROR", "MODE", "STATE", "OK", "FAIL", "VERIFIED", "TIME", "FIRST FAILURE")
	var ok, failed, sampled int
	var bytes int64
	for _, m := range r.Mirrors {
		ok += m.FilesOK
		failed += m.FilesFailed
		sampled += m.FilesSampled
		bytes += m.BytesVerified
		line := fmt.Sprintf(head, humanize.Clip(m.Name, nw), m.Mode, m.State, fmt.Sprint(m.FilesOK), fmt.Sprint(m.FilesFailed),
			humanize.Bytes(m.BytesVerified), shortDuration(m.Seconds), "")
		line = strings.TrimSuffix(line, "\n")
		room := width - utf8.RuneCountInString(line)
		first := m.FirstFailure
		if m.Note != "" && first == "" {
			first = m.Note
		}
		b.WriteString(strings.TrimRight(line+humanize.Clip(first, room), " ") + "\n")
	}
	how := ""
	if sampled > 0 {
		how = fmt.Sprintf(" (%d by sampling blocks)", sampled)
	}
	fmt.Fprintf(&b, "\n%d files verified%s, %d failed, %s verified in this run\n", ok, how, failed, humanize.Bytes(bytes))
	for _, u := range r.Unresolved {
		path := u.Path
		if !wide {
			path = humanize.Clip(path, 40)
		}
		b.WriteString(humanize.Wrap(fmt.Sprintf("not marked: location %d %s: %s", u.LocationID, path, u.Reason), width, "    ") + "\n")
	}
	for _, p := range r.MissingProducts {
		fmt.Fprintf(&b, "no bouncer product %q\n", p)
	}
	b.WriteString(outcomeLine(r.Outcome, r.Reason, width))
	return writeTable(w, &b)
}

func shortDuration(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	default:
		return d.Round(time.Second).String()
	}
}

// writeSweepTable writes a sweep report as a table that fits 80 columns
// (with wide, as wide as its contents).
func writeSweepTable(w io.Writer, r *sweep.Report, wide bool) error {
	width := report.TableWidth(wide)
	nw := nameColumn(wide, r.Mirrors, func(m sweep.MirrorSums) string { return m.Name })
	head := "%-" + fmt.Sprint(nw) + "s %-9s %-5s %6s %6s %6s %5s %6s %s\n"
	var b strings.Builder
	fmt.Fprintf(&b, "%s (run %d): %d files behind active locations of %d releases, %d mirrors\n\n",
		strings.ReplaceAll(r.Kind, "_", " "), r.RunID, r.Files, len(r.Releases), len(r.Mirrors))
	for _, rj := range r.ManifestsRejected {
		b.WriteString(humanize.Wrap(fmt.Sprintf("release %s: its manifest changed and is REFUSED, the known one kept: %s",
			rj.Release, rj.Reason), width, "    ") + "\n")
	}
	if len(r.ManifestsRejected) > 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, head, "MIRROR", "STATE", "REACH", "OK", "SAME", "FAIL", "HASH", "TIME", "FIRST FAILURE")
	for _, m := range r.Mirrors {
		state := m.Condition
		if state == "" {
			state = m.State
		}
		if m.StateChanged {
			state += "*"
		}
		reach := "yes"
		if !m.Reachable {
			reach = "no"
		}
		line := strings.TrimSuffix(fmt.Sprintf(head, humanize.Clip(m.Name, nw), state, reach, fmt.Sprint(m.OK), fmt.Sprint(m.Unchanged),
			fmt.Sprint(m.Failed), fmt.Sprint(m.Hashed), shortDuration(m.Seconds), ""), "\n")
		first := m.FirstFailure
		if first == "" {
			first = m.Note
		}
		b.WriteString(strings.TrimRight(line+humanize.Clip(first, width-utf8.RuneCountInString(line)), " ") + "\n")
		if m.LocationsOff > 0 {
			off := fmt.Sprintf("    %d locations off: %s", m.LocationsOff, strings.Join(m.OffLocations, ", "))
			if more := m.LocationsOff - len(m.OffLocations); more > 0 {
				off += fmt.Sprintf(" and %d more", more)
			}
			b.WriteString(humanize.Clip(off, width) + "\n")
		}
	}
	b.WriteString("(* state changed in this sweep; degraded: up, with locations off;\n SAME: unchanged since the last check)\n")
	b.WriteString(outcomeLine(r.Outcome, r.Reason, width))
	return writeTable(w, &b)
}

// outcomeLine is a run's last line: its outcome and reason, wrapped to fit
// width columns.
func outcomeLine(outcome, reason string, width int) string {
	s := "outcome: " + outcome
	if reason != "" {
		s += ": " + reason
	}
	return humanize.Wrap(s, width, "    ") + "\n"
}
