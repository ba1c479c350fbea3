// Package decide holds the decisions sentry makes from what its checks
// found, as pure functions: no I/O, no clock, no database. Primes and
// sweeps gather the facts, call these, and write what they return.
//
//   - marks.go: a location's mark from the results of the files it stands
//     for (docs/CONTRACTS.md, section 2), and which marks a sweep writes;
//   - guard.go: the mass-failure guard, which holds back marking when
//     sentry's own network is the likelier fault;
//   - state.go: whether a mirror failed a run as a whole, and the
//     hysteresis of its up/down state across sweeps;
//   - quorum.go: how the vantage points' verdicts on a mirror make a sweep
//     count against it;
//   - those that keep mirror admins in the loop: tls.go, certificate
//     warnings; families.go, the address families a mirror is broken
//     over; maintenance.go, maintenance windows; returning.go, the return
//     of a mirror whose offer was suspended;
//   - mirrors.go: which active mirrors a run restricted by --mirror covers.
package decide

import (
	"fmt"

	"github.com/mirrorsentry/sentry/checks"
)

// Mark is what sentry found for one location on one mirror, as
// docs/CONTRACTS.md section 2 maps it onto mirror_location_mirror_map.
type Mark int

const (
	// Unjudged: nothing to write; the row stays as it is.
	Unjudged Mark = iota
	// Good: every file present, size and checksum right:
	// active=true, healthy=true.
	Good
	// Missing: a file missing or wrong: active=false, healthy=false.
	Missing
	// Trouble: transient trouble: active unchanged, healthy=false.
	Trouble
	// Withheld: a file present but not verified where it must be before
	// it is offered (the mirror returned from down or from the admin's
	// switch, the mirror changed it, or it is new to sentry there), and
	// not hashed yet: active=false, healthy=false until it is.
	Withheld
	// Unvouched: a row sentry never vouched for, on a mirror it had never
	// verified anything on (Vouch): active=false, healthy=false, written
	// only to a row that exists and is not off already.
	Unvouched
)

func (m Mark) String() string {
	switch m {
	case Unjudged:
		return "unjudged"
	case Good:
		return "good"
	case Missing:
		return "missing"
	case Trouble:
		return "trouble"
	case Withheld:
		return "withheld"
	case Unvouched:
		return "unvouched"
	}
	return fmt.Sprintf("Mark(%d)", int(m))
}

// LocationMark is the mark of one location.
type LocationMark struct {
	LocationID int
	Mark       Mark
}

// File is what a run knows of one file a location stands for, on one
// mirror.
type File struct {
	// Checked: the run has a result for the file (checked now, or known
	// verified by an earlier run of the release: resumed).
	Checked bool
	// Kind is the result.
	Kind checks.Kind
	// Verified: the file is known right: verified now (hashed in full, or
	// its size and a sample of its blocks right: verify.mode sampled), or
	// verified before and unchanged since.
	Verified bool
	// Withheld: present, not verified, and not to be offered until it is
	// hashed (see Withheld).
	Withheld bool
}

// Location decides one location's mark from the files it stands for (one,
// or one per language). Every file counts: the deployed redirector sends
// every language to every row it offers, whatever an admin's language
// exception (mirror_lmm_lang_exceptions) says, so an exception excuses
// nothing.
//   - no file at all: Unjudged (nothing to vouch for);
//   - a file missing or wrong (a definitive kind): Missing, whatever the
//     other files say;
//   - otherwise a file withheld: Withheld;
//   - otherwise a file without a result (not checked, or sentry's own
//     trouble): Unjudged, since sentry cannot say;
//   - otherwise a file with transient trouble: Trouble;
//   - otherwise every file verified: Good; a file present but never
//     verified (seen by HEAD only): Unjudged.
func Location(files []File) Mark {
	if len(files) == 0 {
		return Unjudged
	}
	mark, withheld := Good, false
	for _, f := range files {
		switch {
		case f.Checked && f.Kind.Definitive():
			return Missing
		case f.Withheld:
			withheld = true
		case !f.Checked || f.Kind == checks.KindInternal:
			mark = Unjudged
		case f.Kind.Failed():
			if mark != Unjudged {
				mark = Trouble
			}
		case !f.Verified && mark == Good:
			mark = unverified
		}
	}
	switch {
	case withheld:
		return Withheld
	case mark == unverified:
		return Unjudged
	}
	return mark
}

// unverified is Location's note of a present file not known right: it
// loses to Trouble and Unjudged and ends as Unjudged.
const unverified Mark = -1

// ForSweep is the mark a sweep writes for a location: a sweep acts at once
// on definitive facts (Missing, Withheld), offers a location (Good) only while the
// mirror is up, and leaves transient trouble to the mirror's hysteresis
// (one flaky answer does not take a location off).
func ForSweep(m Mark, mirrorUp bool) Mark {
	switch {
	case m == Trouble:
		return Unjudged
	case m == Good && !mirrorUp:
		return Unjudged
	}
	return m
}

// KeepGood is what may be written of marks while the mass-failure guard
// holds: the good ones. Marking a location good is never what a broken
// network causes.
func KeepGood(marks []LocationMark) []LocationMark {
	var kept []LocationMark
	for _, l := range marks {
		if l.Mark == Good {
			kept = append(kept, l)
		}
	}
	return kept
}

// AnyBad reports whether marks would take anything off for what a check
// failed to find (Missing or Trouble): only then does the guard need to
// ask the master. Withheld is not one: it comes of what sentry has not
// hashed yet, not of a failure.
func AnyBad(marks []LocationMark) bool {
	for _, l := range marks {
		if l.Mark == Missing || l.Mark == Trouble {
			return true
		}
	}
	return false
}
