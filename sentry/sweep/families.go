package sweep

import (
	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/mirrorjob"
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
// the mirror's (reachMirror, state.family_policy), not the files'. What
// the prime does alike is package mirrorjob's (families.go).

// familyCheck is a file's check over one family.
type familyCheck struct {
	family checks.Family
	checked
}

// familyVerdict is what a file's checks over each family say of it
// (mirrorjob.JudgeFamilies), and its result for the sweep's tally.
type familyVerdict struct {
	mirrorjob.FamilyVerdict
	fr fileResult
}

// judgeFamilies decides what a file's checks over each family (the first
// family's first) say of it (mirrorjob.JudgeFamilies): right over every
// family, verified where every family verified it; failing over every
// family, as the first family found it; failing over some only, failing
// over the first of those alone.
func judgeFamilies(outs []familyCheck) familyVerdict {
	fcs := make([]mirrorjob.FamilyCheck, len(outs))
	for j, o := range outs {
		fcs[j] = mirrorjob.FamilyCheck{Family: o.family, Result: o.res}
	}
	v := familyVerdict{FamilyVerdict: mirrorjob.JudgeFamilies(fcs)}
	switch {
	case v.FailedOver != "":
		v.fr = fileResult{kind: v.Result.Kind}
	case v.Result.Kind.Failed():
		v.fr = outs[0].fr
	default:
		v.fr = outs[0].fr
		for _, o := range outs[1:] {
			v.fr.verified = v.fr.verified && o.fr.verified
			v.fr.withheld = v.fr.withheld || o.fr.withheld
		}
	}
	return v
}

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
