package sweep

import (
	"context"
	"strings"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/mirrorjob"
	"github.com/mirrorsentry/sentry/sentry/record"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// checkFile checks one file: HEAD (conditional when the mirror gave
// validators before) or, when picked for hashing, a full GET through the
// hash. A HEAD that finds the file present where it is not verified (new
// to sentry on the mirror, failing before, changed, or verified only
// before the mirror was suspended) is followed by the GET, within the
// mirror's catch-up budget; a file that does not fit is withheld. listed
// is what an rsync listing said of it ("" for none), kept in its state.
//
// On a dual-stack mirror that answers over each family (ms.fileFamilies)
// the file is checked over each: what a family's users get is what that
// family serves (families.go).
func (t *task) checkFile(ctx context.Context, row *engine.Row, ms *mirrorSweep, i int, f file, hash bool, listed string) {
	prev, known := ms.files[f.key]
	if len(ms.fileFamilies) < 2 {
		o, ok := t.checkOver(ctx, ms, f, prev, known, hash, listed, true)
		if !ok {
			return
		}
		t.record(ctx, row, ms, f.file.Path, f.key.ReleaseID, o.method, o.res, o.routine, listed)
		t.tally(ms, i, f, o.res, o.fr)
		return
	}
	outs := make([]familyCheck, len(ms.fileFamilies))
	for j, fam := range ms.fileFamilies {
		o, ok := t.checkOver(checks.WithFamily(ctx, fam), ms, f, prevOver(prev, fam, j == 0), known, hash, listed, j == 0)
		if !ok {
			return
		}
		outs[j] = familyCheck{family: fam, checked: o}
	}
	v := judgeFamilies(outs)
	for j, o := range outs {
		fctx := checks.WithFamily(ctx, o.family)
		c := record.Check(o.res, f.key.ReleaseID, f.file.Path, o.method, t.job.now(), t.job.Config.Vantage)
		c.Routine, c.Listed = o.routine, listed
		// The speaker of a file failing over one family alone records
		// that failure, with the family (never counted only).
		v.Speak(&c, j, o.family)
		if j == v.Speaker && v.FailedOver == "" && known && prev.FailedOver != "" {
			// It failed over one family before, and no longer does: the
			// state must say so.
			c.Routine = false
		}
		mirrorjob.Record(fctx, row, t.job.Observer, t.run, ms.m, c, o.res)
	}
	t.tally(ms, i, f, v.Result, v.fr)
}

// checked is one check of a file over one family (or the system's
// choice), before it is recorded.
type checked struct {
	res     checks.Result
	method  string
	routine bool // it found what the state says: only counted
	fr      fileResult
}

// checkOver checks a file over ctx's family with prev, what the state
// says of it there (main: the family whose validators the state keeps,
// or the only one). ok false: the check was not the mirror's answer (the
// sweep stopping).
func (t *task) checkOver(ctx context.Context, ms *mirrorSweep, f file, prev store.FileState, known, hash bool, listed string,
	main bool) (checked, bool) {
	tg := checks.Target{URL: strings.TrimSuffix(ms.m.BaseURL, "/") + f.urlPath, Size: f.file.Size,
		Algo: f.file.Algo, Hash: f.file.Hash, PreviousHash: f.file.PreviousHash}
	var res checks.Result
	method := "HEAD"
	if !hash {
		if known && prev.Result == "ok" && main {
			tg.ETag, tg.LastModified = prev.ETag, prev.LastModified
		}
		res = checks.Head(ctx, t.job.Client, tg)
		if res.Kind == checks.KindInternal && ctx.Err() != nil {
			return checked{}, false
		}
		if must, wasFailing := catchUp(prev, known, res); must {
			// Recorded: the HEAD is what the file's state learns from if
			// the budget says no.
			hash = t.takeCatchUp(ms, f.file.Size, wasFailing)
			if !hash {
				return checked{res: res, method: method, fr: fileResult{kind: res.Kind, withheld: true}}, true
			}
		}
	}
	if hash {
		// Unconditional: validators never stand in for bytes.
		method, tg.ETag, tg.LastModified = "GET", "", ""
		res = checks.Verify(ctx, t.job.Client, tg)
		// A cache serving a respun file wrong is purged, where it lets
		// sentry, and the file fetched again.
		res = primer.RefreshStale(ctx, t.job.Client, primer.Purge{Method: ms.m.PurgeMethod, URL: ms.m.PurgeURL}, ms.m.BaseURL, f.file, tg, res)
	}
	if res.Kind == checks.KindInternal && ctx.Err() != nil {
		return checked{}, false
	}
	// A HEAD that finds the file as its state says (present, the same
	// size and validators) is what was known: counted only.
	routine := !res.Hashed && known && prev.Result == string(checks.KindOK) && prev.Listed == listed &&
		(res.Kind == checks.KindUnchanged || res.Kind == checks.KindOK && !validatorsChanged(prev, res))
	verified := false
	switch {
	case res.Kind == checks.KindOK && res.Hashed:
		verified = true
	case res.Kind == checks.KindUnchanged:
		verified = known && prev.Verified && !prev.Rehash
	case res.Kind == checks.KindOK:
		verified = known && prev.Verified && !prev.Rehash && !validatorsChanged(prev, res)
	}
	return checked{res: res, method: method, routine: routine, fr: fileResult{kind: res.Kind, verified: verified}}, true
}

// catchUp reports whether a file a HEAD found present must be hashed
// before it is offered, and whether it was failing (then it is hashed
// whatever the budget: a fixed file is offered again within one sweep):
//   - sentry never verified it on the mirror: hashed;
//   - its body was wrong (checksum_mismatch, too_large): hashed when the
//     mirror changed it (validators or size), else it is the same wrong
//     body, left to the deep sweeps;
//   - it was failing otherwise (missing, transient trouble): hashed;
//   - the mirror changed it since its last hash, or its verification
//     predates the mirror's suspension: hashed.
func catchUp(prev store.FileState, known bool, res checks.Result) (hash, wasFailing bool) {
	if res.Kind != checks.KindOK && res.Kind != checks.KindUnchanged {
		return false, false
	}
	switch {
	case !known:
		return true, false
	case prev.Result == string(checks.KindChecksumMismatch) || prev.Result == string(checks.KindTooLarge):
		return validatorsChanged(prev, res), true
	case prev.Result != string(checks.KindOK):
		return true, true
	}
	return !prev.Verified || prev.Rehash || res.Kind == checks.KindOK && validatorsChanged(prev, res), false
}

// takeCatchUp takes size bytes from the mirror's catch-up budget and
// reports whether they were there. A file that was failing is always
// hashed, and so is the first file to reach an exhausted budget at all, so
// that a file larger than the budget is hashed too.
func (t *task) takeCatchUp(ms *mirrorSweep, size int64, wasFailing bool) bool {
	if wasFailing {
		ms.catchUp.Add(-max(size, 0))
		return true
	}
	for {
		left := ms.catchUp.Load()
		if left <= 0 {
			return false
		}
		if ms.catchUp.CompareAndSwap(left, left-max(size, 1)) {
			return true
		}
	}
}

// validatorsChanged reports whether an answer's ETag, Last-Modified or size
// differ from what the mirror said when the file was last checked.
func validatorsChanged(prev store.FileState, res checks.Result) bool {
	return (res.ETag != "" && prev.ETag != "" && res.ETag != prev.ETag) ||
		(res.LastModified != "" && prev.LastModified != "" && res.LastModified != prev.LastModified) ||
		(res.Bytes >= 0 && prev.Size >= 0 && res.Bytes != prev.Size)
}
