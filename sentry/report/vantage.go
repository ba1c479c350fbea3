package report

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/mirrorsentry/sentry/sentry/internal/humanize"
)

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
