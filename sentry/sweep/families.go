package sweep

import (
	"fmt"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Families per file. A dual-stack mirror may answer each family from
// another server (a second machine behind the AAAA record), and a
// family's users get what that family serves: a browser whose IPv6
// request gets a 404 does not ask again over IPv4 (it would after a
// failed connection). So on a mirror that answers over every family this
// vantage point reaches, each file is checked over each family: the
// first family's check is the one of before (conditional on the
// validators the state keeps, hashing what must be hashed), the others'
// are HEADs of the size, or GETs where the file must be hashed there too
// (picked by the deep sweep, failing there, new). A file failing over
// one family while another serves it right fails — its location goes off
// — and its state says over which family (sentry_file_state.failed_over):
// "missing over IPv6 only". A family that cannot be reached at all is
// the mirror's (reachMirror, state.family_policy), not the files'.

// familyCheck is a file's check over one family.
type familyCheck struct {
	family checks.Family
	checked
}

// familyVerdict is what a file's checks over each family say of it.
type familyVerdict struct {
	// speaker is the check whose recording updates the file's state: the
	// first family's, or, when the file fails over one family alone, the
	// check of a family that serves it right (its validators and
	// verification are the state's), carrying that failure.
	speaker int
	// failedOver is the family the file fails over alone, "" for none.
	failedOver checks.Family
	// res and fr are the file's result: the failing family's when it
	// fails over one alone (its detail saying so).
	res checks.Result
	fr  fileResult
}

// judgeFamilies decides what a file's checks over each family (the first
// family's first) say of it: right over every family, verified where
// every family verified it; failing over every family, as the first
// family found it; failing over some only, failing, as the first of
// those found it, over that family alone.
func judgeFamilies(outs []familyCheck) familyVerdict {
	var failing, right []int
	for j, o := range outs {
		if o.res.Kind.Failed() {
			failing = append(failing, j)
		} else {
			right = append(right, j)
		}
	}
	switch {
	case len(failing) == 0:
		v := familyVerdict{res: outs[0].res, fr: outs[0].fr}
		for _, o := range outs[1:] {
			v.fr.verified = v.fr.verified && o.fr.verified
			v.fr.withheld = v.fr.withheld || o.fr.withheld
		}
		return v
	case len(right) == 0:
		return familyVerdict{res: outs[0].res, fr: outs[0].fr}
	}
	bad, good := outs[failing[0]], outs[right[0]]
	res := bad.res
	res.Detail = fmt.Sprintf("%s (served right over %s): %s", OnlyOver(bad.family), good.family.Label(), bad.res.Detail)
	return familyVerdict{speaker: right[0], failedOver: bad.family, res: res, fr: fileResult{kind: bad.res.Kind}}
}

// OnlyOver says a failure is a family's alone: "over IPv6 only".
func OnlyOver(f checks.Family) string { return "over " + f.Label() + " only" }

// prevOver is what a file's state says of it over family fam (main: the
// family whose validators the state keeps). A file failing over another
// family alone is, over this one, what the families that serve it right
// made of it: present, verified as they verified it. Another family's
// server has validators of its own: over a family other than the main
// one, the file is compared by its size only.
func prevOver(prev store.FileState, fam checks.Family, main bool) store.FileState {
	p := prev
	if p.FailedOver != "" && p.FailedOver != string(fam) {
		p.Result, p.Verified = string(checks.KindOK), p.VerifiedElsewhere
	}
	if !main {
		p.ETag, p.LastModified = "", ""
	}
	return p
}

// fileFamilies are the families a mirror's files are checked over, in
// the order its reachability was checked (IPv4 first): every family,
// when the mirror answered over each of several (found: family → what
// failed, "" for reached); none otherwise — one family, the system's
// choice, or the one family that answers (reachMirror pins it).
func fileFamilies(found map[string]string) []checks.Family {
	if len(found) < 2 {
		return nil
	}
	var out []checks.Family
	for _, f := range []checks.Family{checks.IPv4, checks.IPv6} {
		why, ok := found[string(f)]
		if !ok {
			continue
		}
		if why != "" {
			return nil
		}
		out = append(out, f)
	}
	if len(out) < 2 {
		return nil
	}
	return out
}
