package primer

import (
	"fmt"
	"strconv"

	"github.com/mirrorsentry/sentry/checks"
)

// Priming is how a pull-through cache is primed, as sentry learned it
// (sentry_mirror_priming.prime_by).
type Priming string

// The ways of priming a pull mirror.
const (
	// PrimeUnknown: not learned yet; a sampled prime learns it.
	PrimeUnknown Priming = ""
	// PrimeByRange: a one-byte range ("Range: bytes=0-0") makes the cache
	// fetch the whole file from the master and keep it (nginx
	// proxy_cache does); the file is then verified by sampling.
	PrimeByRange Priming = "range"
	// PrimeByGet: the cache keeps only what it was asked for whole
	// (Squid's default range_offset_limit forwards ranges uncached), or
	// says nothing sentry could learn from: a full GET primes the file and
	// verifies it in full in the same pass.
	PrimeByGet Priming = "get"
)

// SampleID is the id of a sampled check of a file on a mirror, from which
// a checks.Sampler derives the blocks it reads: run (Config.SampleID),
// the mirror and the file's path, so that every check of a run reads its
// own blocks.
func SampleID(run string, mirrorID int, path string) string {
	return run + "\x00" + strconv.Itoa(mirrorID) + "\x00" + path
}

// sampled reports whether f is verified by sampling: the prime samples,
// f has digests of every block, and reading the blocks asked is less
// than reading the file.
func (r *run) sampled(f File) bool {
	n := f.Blocks.Count()
	return r.cfg.Sampled && r.cfg.Sampler != nil && f.Size > 0 && n > r.cfg.SampleBlocks &&
		n == checks.BlockCount(f.Size, f.Blocks.Size)
}

// verifyFile verifies f on the mirror: by sampling its blocks when it is
// sampled, else in full.
func (r *run) verifyFile(f File, t checks.Target) checks.Result {
	if !r.sampled(f) {
		return checks.Verify(r.ctx, r.cfg.Client, t)
	}
	pick := r.cfg.Sampler.Pick(SampleID(r.cfg.SampleID, r.m.ID, f.Path), f.Blocks.Count(), r.cfg.SampleBlocks)
	return checks.Sample(r.ctx, r.cfg.Client, t, f.Blocks, pick)
}

// pullFile primes and verifies one file of a pull mirror: with a one-byte
// range and a sample where the cache fills on a range, else with a full
// GET (pullOne).
func (r *run) pullFile(f File) error {
	if r.by == PrimeByRange && r.sampled(f) {
		return r.pullRange(f)
	}
	return r.pullOne(f)
}

// pullRange primes f with a one-byte range and verifies it by sampling.
func (r *run) pullRange(f File) error {
	t := r.target(f)
	touch, err := r.request(func() checks.Result { return checks.Touch(r.ctx, r.cfg.Client, t) })
	if err != nil {
		return err
	}
	if touch.Kind != checks.KindOK || touch.Hashed {
		// A failure, or the whole file came (200) and was verified in
		// full: either way the file's outcome.
		return r.emit(f.Path, MethodGet, touch)
	}
	res, err := r.request(func() checks.Result { return r.verifyFile(f, t) })
	if err != nil {
		return err
	}
	if r.m.Purge.Set() && NeedsPurge(f, res) {
		// A respun file the cache serves wrong (the previous version,
		// most likely): purged, then fetched and verified in full.
		if res, err = r.purgeStale(f, t, res); err != nil {
			return err
		}
		return r.emit(f.Path, MethodGet, res)
	}
	if res.Cache == checks.CacheMiss && touch.Cache != checks.CacheHit {
		// The cache did not keep the file the one-byte range fetched
		// (its configuration changed since it was learned): prime it
		// with a full GET, and have the next prime do so from the start.
		r.relearn.Do(func() {
			why := fmt.Sprintf("the request after a one-byte range was a miss (%s), although a range filled the cache before: primed with full GETs", res.CacheStatus)
			r.log.Debug("the cache no longer fills on a range", "why", why)
			if r.cfg.Learned != nil {
				r.cfg.Learned(PrimeByGet, why)
			}
		})
		return r.pullOne(f)
	}
	return r.emit(f.Path, MethodGet, primedByRange(res, touch))
}

// primedByRange records the one-byte prime in the verification's result:
// the prime's cache headers, then ("after:") the verification's.
func primedByRange(res, touch checks.Result) checks.Result {
	cs := touch.CacheStatus
	if cs == "" {
		cs = "no cache headers"
	}
	after := res.CacheStatus
	if after == "" {
		after = "no cache headers"
	}
	res.CacheStatus = joinDetail(cs, "after: "+after)
	res.Detail = joinDetail("primed with a one-byte range", res.Detail)
	return res
}

// learnPriming learns, on a sampled prime of a pull mirror whose way of
// priming is not known, whether a one-byte range makes the cache keep the
// file: it primes files one at a time with a one-byte range and verifies
// each by sampling, until the cache's own word on that next request
// (X-Cache-Status, Cache-Status, X-Cache, Age: checks.CacheWordOf)
// settles it — a hit: the cache fills on a range (PrimeByRange); a miss,
// or no word at all: it is primed with full GETs (PrimeByGet, and the
// file is primed again so). A file the cache held already (its one-byte
// answer a hit), or that it answers missing or wrong, teaches nothing,
// and the next one is tried. It returns
// the files not primed yet. What it learned is set for the rest of the
// prime and told to Config.Learned; when it learned nothing (no answer to
// learn from), the rest is primed with full GETs and nothing is told.
func (r *run) learnPriming(files []File) ([]File, error) {
	r.by = r.m.Priming
	if !r.cfg.Sampled || r.by != PrimeUnknown {
		return files, nil
	}
	rest := make([]File, 0, len(files))
	probed := false
	for i, f := range files {
		if r.by != PrimeUnknown || !r.sampled(f) {
			rest = append(rest, f)
			continue
		}
		probed = true
		by, why, err := r.probe(f)
		if err != nil {
			return nil, err
		}
		if by == PrimeUnknown {
			continue // already cached: the next file tells
		}
		if by == primeUnlearned {
			r.by = PrimeByGet
			r.log.Debug("priming not learned; priming with full GETs", "why", why)
			rest = append(rest, files[i+1:]...)
			return rest, nil
		}
		r.by = by
		r.log.Debug("learned how the cache is primed", "by", string(by), "why", why)
		if r.cfg.Learned != nil {
			r.cfg.Learned(by, why)
		}
	}
	if r.by == PrimeUnknown && probed {
		r.by = PrimeByRange // every file probed was cached already: ranges and samples verify the rest
	}
	return rest, nil
}

// primeUnlearned is probe's word for a file that gave no answer to learn
// from (a failure before the cache spoke).
const primeUnlearned Priming = "unlearned"

// probe primes f with a one-byte range, verifies it by sampling, and
// says what the cache's word on the sample teaches (PrimeUnknown: the
// file was cached already; primeUnlearned: no answer to learn from). It
// emits f's outcome.
func (r *run) probe(f File) (Priming, string, error) {
	t := r.target(f)
	touch, err := r.request(func() checks.Result { return checks.Touch(r.ctx, r.cfg.Client, t) })
	if err != nil {
		return "", "", err
	}
	switch {
	case touch.Kind == checks.KindOK && touch.Hashed:
		return PrimeByGet, "the cache answered a one-byte range with the whole file (200): primed with full GETs",
			r.emit(f.Path, MethodGet, touch)
	case touch.Kind.Definitive():
		// The cache answered, about this file (it is wrong or missing
		// there): the file's outcome, and the next file tells.
		return PrimeUnknown, "", r.emit(f.Path, MethodGet, touch)
	case touch.Kind != checks.KindOK:
		return primeUnlearned, fmt.Sprintf("a one-byte range failed (%s)", touch.Kind), r.emit(f.Path, MethodGet, touch)
	}
	res, err := r.request(func() checks.Result { return r.verifyFile(f, t) })
	if err != nil {
		return "", "", err
	}
	switch {
	case res.Status == 0:
		// No answer (a network failure): nothing to learn from; a full
		// GET settles the file.
		return primeUnlearned, fmt.Sprintf("the request after a one-byte range failed (%s)", res.Kind), r.pullOne(f)
	case touch.Cache == checks.CacheHit:
		return PrimeUnknown, "", r.emit(f.Path, MethodGet, primedByRange(res, touch))
	case res.Cache == checks.CacheHit:
		return PrimeByRange, fmt.Sprintf("a one-byte range filled the cache: the next request was a hit (%s)", res.CacheStatus),
			r.emit(f.Path, MethodGet, primedByRange(res, touch))
	case res.Cache == checks.CacheMiss:
		return PrimeByGet, fmt.Sprintf("the request after a one-byte range was a miss (%s): the cache does not keep what it fetches for a range; primed with full GETs",
			res.CacheStatus), r.pullOne(f)
	}
	return PrimeByGet, "no cache headers: whether a one-byte range fills the cache cannot be told; primed with full GETs", r.pullOne(f)
}
