package primer

import (
	"time"

	"github.com/mirrorsentry/sentry/checks"
)

// Families per file. A dual-stack mirror may answer each address family
// from another server (a second machine behind the AAAA record), and a
// family's users get what that family serves: a browser whose IPv6
// request gets a 404 does not ask again over IPv4. So on a mirror with
// several Families, each file is primed and its bytes verified over the
// first, as on any mirror, and over each other family its presence and
// size are checked with a HEAD (Outcome.Beside): a file missing or of
// another size there is found, and the caller fails it over that family
// alone. A file whose bytes were found wrong before (File.HashBeside) is
// verified in full over each family: a right size cannot clear it.
//
// A HEAD, not a sample, even in a sampled prime: it costs no body, and
// what a second server behind the AAAA record gets wrong is a file it
// lacks or holds in another version (another size). A sample there would
// read verify.sample_blocks blocks a file more, and would have to learn
// how that server answers ranges and whether its cache fills on one —
// what sentry learns per mirror (Mirror.Ranges, Mirror.Priming), not per
// server. The other family's bytes are hashed by the sweeps (a deep
// sweep hashes a file over each family).
//
// In the passive and trigger modes, the two servers may sync at other
// times: a file verified over the first family whose HEAD over another
// fails is polled for there (a HEAD a round, the verification kept) until
// that family serves it too or the deadline passes; its outcome then
// carries the last answer.

// FamilyResult is a file's check over one of the mirror's families besides
// the first (Mirror.Families): a HEAD (MethodHead), or a GET through the
// hash (MethodGet) for a file whose bytes were found wrong before
// (File.HashBeside).
type FamilyResult struct {
	Family    checks.Family
	Method    string
	Result    checks.Result
	CheckedAt time.Time
}

// family is the address family file requests go over: the first of
// Mirror.Families, "" for the system's choice.
func (r *run) family() checks.Family {
	if len(r.m.Families) == 0 {
		return ""
	}
	return r.m.Families[0]
}

// besides checks f over each of the mirror's families but the first: a
// HEAD of its presence and size each, or, for a file whose bytes were
// found wrong before (File.HashBeside), a GET through the hash. None for
// the trigger (f zero), on a mirror checked over one family, or when res,
// the file's outcome over the first family, is sentry's own fault
// (KindInternal: its data is wrong, and would be over any family).
func (r *run) besides(f File, res checks.Result) ([]FamilyResult, error) {
	if f.Path == "" || len(r.m.Families) < 2 || res.Kind == checks.KindInternal {
		return nil, nil
	}
	t := r.target(f)
	method, check := MethodHead, checks.Head
	if f.HashBeside {
		method, check = MethodGet, checks.Verify
	}
	out := make([]FamilyResult, 0, len(r.m.Families)-1)
	for _, fam := range r.m.Families[1:] {
		res, err := r.request(func() checks.Result { return check(checks.WithFamily(r.ctx, fam), r.cfg.Client, t) })
		if err != nil {
			return nil, err
		}
		out = append(out, FamilyResult{Family: fam, Method: method, Result: res, CheckedAt: time.Now()})
	}
	return out, nil
}

// anyFailed reports whether a check over another family failed.
func anyFailed(beside []FamilyResult) bool {
	for _, b := range beside {
		if b.Result.Kind.Failed() {
			return true
		}
	}
	return false
}
