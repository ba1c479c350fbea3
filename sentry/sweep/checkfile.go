package sweep

import (
	"context"
	"strings"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// checkFile checks one file: HEAD (conditional when the mirror gave
// validators before) or, when picked for hashing, a full GET through the
// hash. A HEAD that finds the file present where it is not verified (new
// to sentry on the mirror, failing before, changed, or verified only
// before the mirror was suspended) is followed by the GET, within the
// mirror's catch-up budget; a file that does not fit is withheld. listed
// is what an rsync listing said of it ("" for none), kept in its state.
func (t *task) checkFile(ctx context.Context, row *engine.Row, ms *mirrorSweep, i int, f file, hash bool, listed string) {
	prev, known := ms.files[f.key]
	tg := checks.Target{URL: strings.TrimSuffix(ms.m.BaseURL, "/") + f.urlPath, Size: f.file.Size,
		Algo: f.file.Algo, Hash: f.file.Hash, PreviousHash: f.file.PreviousHash}
	var res checks.Result
	method := "HEAD"
	if !hash {
		if known && prev.Result == "ok" {
			tg.ETag, tg.LastModified = prev.ETag, prev.LastModified
		}
		res = checks.Head(ctx, t.job.Client, tg)
		if res.Kind == checks.KindInternal && ctx.Err() != nil {
			return
		}
		if must, wasFailing := catchUp(prev, known, res); must {
			// Recorded: the HEAD is what the file's state learns from if
			// the budget says no.
			hash = t.takeCatchUp(ms, f.file.Size, wasFailing)
			if !hash {
				t.record(ctx, row, ms, f.file.Path, f.key.ReleaseID, method, res, false, listed)
				t.tally(ms, i, f, res, fileResult{kind: res.Kind, withheld: true})
				return
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
		return
	}
	// A HEAD that finds the file as its state says (present, the same
	// size and validators) is what was known: counted only.
	routine := !res.Hashed && known && prev.Result == string(checks.KindOK) && prev.Listed == listed &&
		(res.Kind == checks.KindUnchanged || res.Kind == checks.KindOK && !validatorsChanged(prev, res))
	t.record(ctx, row, ms, f.file.Path, f.key.ReleaseID, method, res, routine, listed)
	verified := false
	switch {
	case res.Kind == checks.KindOK && res.Hashed:
		verified = true
	case res.Kind == checks.KindUnchanged:
		verified = known && prev.Verified && !prev.Rehash
	case res.Kind == checks.KindOK:
		verified = known && prev.Verified && !prev.Rehash && !validatorsChanged(prev, res)
	}
	t.tally(ms, i, f, res, fileResult{kind: res.Kind, verified: verified})
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
