package mirrorjob

import (
	"context"
	"errors"
	"fmt"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Address families, as the prime and the sweep check them alike.
//
// A mirror whose host has addresses of several families this vantage
// point reaches (checks.families) is checked over each (Families): its
// reachability first (ReachOver). A family that does not answer at all
// is the mirror's (state.family_policy: clients fall back to the other
// family on a failed connection): its files are checked over one that
// answers (Reach.Pin). A mirror answering over every family may still
// answer them from different servers (a second machine behind the AAAA
// record), and a family's users get what that family serves — a browser
// whose IPv6 request gets a 404 does not ask again over IPv4 — so each of
// its files is checked over each family (FileFamilies), and a file
// failing over one family while another serves it right fails, over that
// family alone (JudgeFamilies): "not_found … over IPv6 only (served right
// over IPv4)", recorded with the family (FamilyVerdict.Speak,
// sentry_file_state.failed_over).

// Families are the address families a mirror at baseURL is checked over
// from this vantage point: those of its host's addresses that it reaches
// (reach: checks.families), when there are several; nil means one check,
// over whichever family the system picks. It makes no request (a name
// lookup at most).
func Families(ctx context.Context, c *checks.Client, reach []string, baseURL string) []checks.Family {
	have, err := c.Families(ctx, baseURL)
	if err != nil {
		return nil // the check itself says what is wrong with the name
	}
	var out []checks.Family
	for _, f := range have {
		for _, r := range reach {
			if string(f) == r {
				out = append(out, f)
			}
		}
	}
	if len(out) < 2 {
		return nil
	}
	return out
}

// Reach is what checking a mirror's reachability over each of its
// families found.
type Reach struct {
	// Result stands for the mirror: the first check that reached it, else
	// the first failure.
	Result checks.Result
	// Found maps each family checked to "" (reached) or what failed
	// ("connect: …").
	Found map[string]string
	// Pin is the family the mirror's files are checked over when some
	// family failed while another answered (the first that answered); ""
	// when every family answered (FileFamilies), or none did.
	Pin checks.Family
}

// Broken are the families the mirror failed over while it answered over
// another, in the order checked; nil when it answered over every family,
// or over none (then it is unreachable).
func (r Reach) Broken(fams []checks.Family) []string {
	if r.Pin == "" {
		return nil
	}
	var out []string
	for _, f := range fams {
		if r.Found[string(f)] != "" {
			out = append(out, string(f))
		}
	}
	return out
}

// ReachOver checks that the mirror at baseURL answers over each of fams
// (Families), in turn, and hands each check to record with a context
// naming its family (checks.FamilyOf), to be recorded with it. ok false:
// a check was stopped (Stopped): it is not the mirror's answer, and
// neither it nor the rest is recorded.
func ReachOver(ctx context.Context, c *checks.Client, baseURL string, fams []checks.Family,
	record func(ctx context.Context, res checks.Result)) (r Reach, ok bool) {
	r.Found = map[string]string{}
	var best, firstFail *checks.Result
	for _, f := range fams {
		fctx := checks.WithFamily(ctx, f)
		res := checks.Reachable(fctx, c, baseURL)
		if Stopped(ctx, res) {
			return Reach{Result: res}, false
		}
		record(fctx, res)
		if res.Kind.Failed() {
			r.Found[string(f)] = fmt.Sprintf("%s: %s", res.Kind, res.Detail)
			if firstFail == nil {
				firstFail = &res
			}
			continue
		}
		r.Found[string(f)] = ""
		if best == nil {
			best, r.Pin = &res, f
		}
	}
	switch {
	case best == nil:
		r.Result = *firstFail
	case firstFail == nil:
		r.Result, r.Pin = *best, "" // every family answers: the files over each
	default:
		r.Result = *best
	}
	return r, true
}

// Stopped reports whether a check was not the mirror's answer (this
// sentry stopping, or the row's lease gone): it is neither recorded nor
// counted.
func Stopped(ctx context.Context, res checks.Result) bool {
	return ctx.Err() != nil || errors.Is(res.Err, checks.ErrGuarded)
}

// FileFamilies are the families a mirror's files are checked over, in
// the order its reachability was checked (IPv4 first): every family,
// when the mirror answered over each of several (found: family → what
// failed, "" for reached: Reach.Found); none otherwise — one family, the
// system's choice, or the one family that answers (Reach.Pin).
func FileFamilies(found map[string]string) []checks.Family {
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

// FamilyCheck is a file's check over one family.
type FamilyCheck struct {
	Family checks.Family
	Result checks.Result
}

// FamilyVerdict is what a file's checks over each family say of it.
type FamilyVerdict struct {
	// Speaker is the check whose recording updates the file's state: the
	// first family's, or, when the file fails over one family alone, the
	// check of a family that serves it right (its validators and
	// verification are the state's), carrying that failure.
	Speaker int
	// FailedOver is the family the file fails over alone, "" for none.
	FailedOver checks.Family
	// Result is the file's: the first family's, or the failing family's
	// when it fails over one alone (its detail saying so).
	Result checks.Result
}

// JudgeFamilies decides what a file's checks over each family (the
// first family's first) say of it: right over every family, the first
// family's word; failing over every family, as the first family found
// it; failing over some only, failing, as the first of those found it,
// over that family alone: "over IPv6 only (served right over IPv4):
// HTTP 404".
func JudgeFamilies(outs []FamilyCheck) FamilyVerdict {
	var failing, right []int
	for j, o := range outs {
		if o.Result.Kind.Failed() {
			failing = append(failing, j)
		} else {
			right = append(right, j)
		}
	}
	if len(failing) == 0 || len(right) == 0 {
		return FamilyVerdict{Result: outs[0].Result}
	}
	bad, good := outs[failing[0]], outs[right[0]]
	res := bad.Result
	res.Detail = fmt.Sprintf("%s (served right over %s): %s", OnlyOver(bad.Family), good.Family.Label(), bad.Result.Detail)
	return FamilyVerdict{Speaker: right[0], FailedOver: bad.Family, Result: res}
}

// Speak sets on c, the record of the file's check over family fam (the
// j-th judged), what it says of the file: its family; beside, unless it
// is the speaker (recorded and counted, it changes nothing of the file's
// state); and, on the speaker of a file failing over one family alone,
// that failure with its family — never only counted, since the state
// must say it.
func (v FamilyVerdict) Speak(c *store.Check, j int, fam checks.Family) {
	c.Family, c.Beside = string(fam), j != v.Speaker
	if j == v.Speaker && v.FailedOver != "" {
		c.Routine, c.FailedOver, c.FailedKind, c.FailedDetail = false, string(v.FailedOver), string(v.Result.Kind), v.Result.Detail
	}
}

// OnlyOver says a failure is a family's alone: "over IPv6 only".
func OnlyOver(f checks.Family) string { return "over " + f.Label() + " only" }
