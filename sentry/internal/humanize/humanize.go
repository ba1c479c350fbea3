// Package humanize formats numbers, durations and strings for people:
// the tables of the command line and the status page share it.
//
// Every string it clips or wraps is made safe first (safetext.Text:
// control and bidirectional characters replaced by visible text), so
// that a clip never cuts an escape sequence in half and a column's width
// is that of what the terminal shows.
package humanize

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mirrorsentry/sentry/checks/safetext"
)

// Bytes formats n as B, KiB, MiB, GiB or TiB.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGT"[exp])
}

// Width is how many runes s takes once made safe (safetext.Text): the
// width of its column.
func Width(s string) int { return utf8.RuneCountInString(safetext.Text(s)) }

// Clip makes s safe (safetext.Text) and shortens it to at most n runes,
// marking a cut with "…".
func Clip(s string, n int) string {
	if n <= 0 {
		return ""
	}
	s = safetext.Text(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// ClipLeft makes s safe (safetext.Text) and shortens it to at most n
// runes keeping its end (a path's file name says more than its first
// directories).
func ClipLeft(s string, n int) string {
	if n <= 0 {
		return ""
	}
	s = safetext.Text(s)
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}

// Ago says how long ago something happened d before now, in at most
// eight characters: "42s ago", "17m ago", "30h ago", "12d ago".
func Ago(d time.Duration) string {
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}

// Duration rounds d to what a reader needs: tenths of a second under a
// minute, seconds above.
func Duration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// Wrap makes s safe (safetext.Text, after splitting it at white space)
// and breaks it into lines of at most width runes at spaces, indenting
// every line after the first by indent; a word longer than a line is
// clipped.
func Wrap(s string, width int, indent string) string {
	var b strings.Builder
	line := 0
	room := width
	for _, w := range strings.Fields(s) {
		w = safetext.Text(w)
		n := utf8.RuneCountInString(w)
		switch {
		case line == 0:
		case line+1+n <= room:
			b.WriteByte(' ')
			line++
		default:
			b.WriteString("\n" + indent)
			room, line = width-utf8.RuneCountInString(indent), 0
		}
		if n > room-line {
			w = Clip(w, room-line)
			n = room - line
		}
		b.WriteString(w)
		line += n
	}
	return b.String()
}
