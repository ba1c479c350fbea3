package primer

import (
	"fmt"
	"time"

	"github.com/mirrorsentry/sentry/checks"
)

// Learning how a pull-through cache is primed, from the cache's own word
// (X-Cache-Status, Cache-Status, X-Cache, Age: checks.CacheWordOf) on a
// request after a one-byte range. A cache fills in its own time: Squid
// with range_offset_limit -1 keeps what a one-byte request fetched, but
// says MISS until the whole file is in; so a miss is confirmed by later
// requests, after the fill had time to complete (confirmFill), and only
// repeated evidence (primingFrom) turns it into PrimeByGet.

// Defaults of Config.FillWait and Config.FillTries.
const (
	DefaultFillWait  = 500 * time.Millisecond
	DefaultFillTries = 4
)

// missesForGet is how many files a prime must see not filled by a
// one-byte range, with none seen filled, before the cache is primed with
// full GETs: one slow fill is no evidence.
const missesForGet = 3

// fills is what the files of a prime taught of whether the cache fills on
// a one-byte range: files whose fill a request after it confirmed (hits),
// and files whose fill no request confirmed within the bound (misses).
type fills struct{ hits, misses int }

// primingFrom decides how a cache is primed from what the files taught:
// by range once a fill was confirmed; by full GETs once missesForGet
// files were not filled and none was; PrimeUnknown until then.
func primingFrom(f fills) Priming {
	switch {
	case f.hits > 0:
		return PrimeByRange
	case f.misses >= missesForGet:
		return PrimeByGet
	}
	return PrimeUnknown
}

// priming is how the run primes the cache now.
func (r *run) priming() Priming {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.by
}

// noteFill counts a file whose fill was confirmed (filled) or not (why
// says what the cache answered), and, for a cache primed by range, turns
// the run to full GETs once the evidence says so, telling Config.Learned
// once.
func (r *run) noteFill(filled bool, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if filled {
		r.fills.hits++
		return
	}
	r.fills.misses++
	if r.by != PrimeByRange || primingFrom(r.fills) != PrimeByGet {
		return
	}
	r.by = PrimeByGet
	why = fmt.Sprintf("%d files not filled by a one-byte range, none filled, although a range filled the cache before (last: %s): primed with full GETs",
		r.fills.misses, why)
	r.log.Debug("the cache no longer fills on a range", "why", why)
	if r.cfg.Learned != nil {
		r.cfg.Learned(PrimeByGet, why)
	}
}

// confirmFill asks the cache's word on the file of t after a one-byte
// prime whose next request was a miss: up to Config.FillTries one-byte
// requests, the first after Config.FillWait and each after twice the wait
// before, until one is a hit. Each asks a byte the cache was not asked
// for before (the file's last bytes, one further from its end each time),
// so that a cache that keeps each range apart (nginx keyed by Range)
// cannot answer it from what it kept. It returns the last answer and
// whether it was a hit.
func (r *run) confirmFill(t checks.Target) (checks.Result, bool, error) {
	wait := r.cfg.FillWait
	var last checks.Result
	for i := range r.cfg.FillTries {
		if err := sleep(r.ctx, wait); err != nil {
			return last, false, err
		}
		wait *= 2
		off := max(t.Size-1-int64(i), 0)
		var honoured bool
		res, err := r.request(func() (res checks.Result) { res, honoured = checks.TouchAt(r.ctx, r.cfg.Client, t, off); return res })
		if err != nil {
			return last, false, err
		}
		last = res
		switch {
		case res.Kind == checks.KindOK && honoured && res.Cache == checks.CacheHit:
			return last, true, nil
		case res.Kind != checks.KindOK || !honoured:
			return last, false, nil // no word to wait for
		}
	}
	return last, false, nil
}

// lesson is what probing one file taught of how the cache is primed.
type lesson int8

const (
	// taughtNothing: the file was cached already, or is missing or wrong.
	taughtNothing lesson = iota
	// taughtFilled: a request after the one-byte range was a hit.
	taughtFilled
	// taughtNotFilled: no request within the bound was a hit.
	taughtNotFilled
	// taughtGet: the cache cannot be primed with a range: it does not
	// honour one, or sends no cache header to tell.
	taughtGet
	// taughtUnreachable: no answer to learn from (a failure before the
	// cache spoke).
	taughtUnreachable
)

// learnPriming learns, on a sampled prime of a pull mirror whose way of
// priming is not known, whether a one-byte range makes the cache keep the
// file: it primes files one at a time with a one-byte range and verifies
// each by sampling (probe), until what they taught settles it: a fill
// confirmed (PrimeByRange); missesForGet files not filled, none filled,
// a cache that does not honour a one-byte range or says nothing
// (PrimeByGet). It returns the files not primed yet. What it learned is
// set for the rest of the prime and told to Config.Learned; when it
// learned nothing (no answer to learn from, or too few files to tell),
// the rest is primed with full GETs and nothing is told: the next prime
// learns again.
func (r *run) learnPriming(files []File) ([]File, error) {
	r.by = r.m.Priming
	if !r.cfg.Sampled || r.by != PrimeUnknown {
		return files, nil
	}
	rest := make([]File, 0, len(files))
	probed := false
	for i, f := range files {
		if r.by == PrimeUnknown {
			var err error
			if f, err = r.ready(f); err != nil {
				return nil, err
			}
		}
		if r.by != PrimeUnknown || !r.sampled(f) {
			rest = append(rest, f)
			continue
		}
		probed = true
		taught, why, err := r.probe(f)
		if err != nil {
			return nil, err
		}
		switch taught {
		case taughtUnreachable:
			r.by = PrimeByGet
			r.log.Debug("priming not learned; priming with full GETs", "why", why)
			return append(rest, files[i+1:]...), nil
		case taughtGet:
			r.by = PrimeByGet
		case taughtFilled:
			r.fills.hits++
		case taughtNotFilled:
			r.fills.misses++
		}
		if r.by == PrimeUnknown {
			r.by = primingFrom(r.fills)
		}
		if r.by != PrimeUnknown {
			if taught == taughtNotFilled {
				why = fmt.Sprintf("%d files not filled by a one-byte range, none filled (last: %s)", r.fills.misses, why)
			}
			r.log.Debug("learned how the cache is primed", "by", string(r.by), "why", why)
			if r.cfg.Learned != nil {
				r.cfg.Learned(r.by, why)
			}
		}
	}
	switch {
	case r.by != PrimeUnknown || !probed:
	case r.fills.misses > 0:
		// Files not filled, too few to tell: nothing told.
		r.by = PrimeByGet
	default:
		r.by = PrimeByRange // every file probed was cached already: ranges and samples verify the rest
	}
	return rest, nil
}

// probe primes f with a one-byte range, verifies it by sampling, and
// says what the cache's word on that request, or on later ones
// (confirmFill), teaches, and why. It emits f's outcome: the sample's, or,
// when the cache did not keep the file, a full GET's (pullOne).
func (r *run) probe(f File) (lesson, string, error) {
	t := r.target(f)
	var honoured bool
	touch, err := r.request(func() (res checks.Result) { res, honoured = checks.Touch(r.ctx, r.cfg.Client, t); return res })
	if err != nil {
		return 0, "", err
	}
	switch {
	case touch.Kind == checks.KindOK && !honoured && touch.Hashed:
		return taughtGet, "the cache answered a one-byte range with the whole file (200): primed with full GETs",
			r.emit(f, MethodGet, touch)
	case touch.Kind == checks.KindOK && !honoured:
		return taughtGet, fmt.Sprintf("the cache does not honour a one-byte range (%s): primed with full GETs", touch.Detail), r.pullOne(f)
	case touch.Kind.Definitive():
		// The cache answered, about this file (it is wrong or missing
		// there): the file's outcome, and the next file tells.
		return taughtNothing, "", r.emit(f, MethodGet, touch)
	case touch.Kind != checks.KindOK:
		return taughtUnreachable, fmt.Sprintf("a one-byte range failed (%s)", touch.Kind), r.emit(f, MethodGet, touch)
	}
	res, err := r.request(func() checks.Result { return r.verifyFile(f, t) })
	if err != nil {
		return 0, "", err
	}
	switch {
	case res.Status == 0:
		// No answer (a network failure): nothing to learn from; a full
		// GET settles the file.
		return taughtUnreachable, fmt.Sprintf("the request after a one-byte range failed (%s)", res.Kind), r.pullOne(f)
	case touch.Cache == checks.CacheHit:
		return taughtNothing, "", r.emit(f, MethodGet, primedByRange(res, touch))
	case res.Cache == checks.CacheHit:
		return taughtFilled, fmt.Sprintf("a one-byte range filled the cache: the next request was a hit (%s)", res.CacheStatus),
			r.emit(f, MethodGet, primedByRange(res, touch))
	case res.Cache == checks.CacheSilent && touch.Cache == checks.CacheSilent:
		return taughtGet, "no cache headers: whether a one-byte range fills the cache cannot be told; primed with full GETs", r.pullOne(f)
	}
	// A miss: the cache may be filling still.
	later, hit, err := r.confirmFill(t)
	if err != nil {
		return 0, "", err
	}
	if hit {
		return taughtFilled, fmt.Sprintf("a one-byte range filled the cache: the next request was a miss (%s), a later one a hit (%s)",
				res.CacheStatus, later.CacheStatus),
			r.emit(f, MethodGet, primedByRange(res, touch, later))
	}
	return taughtNotFilled, fmt.Sprintf("%s: the request after a one-byte range was a miss (%s), and so were later ones (%s): the cache does not keep what it fetches for a range; primed with full GETs",
		f.Path, res.CacheStatus, later.CacheStatus), r.pullOne(f)
}
