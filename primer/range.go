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
	// proxy_cache, Varnish, Squid with range_offset_limit -1); the file
	// is then verified by sampling.
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
// sampled — asking the mirror's server for ranges the way it answers
// them, and learning it (learnRanges) — else in full.
func (r *run) verifyFile(f File, t checks.Target) checks.Result {
	if !r.sampled(f) {
		return checks.Verify(r.ctx, r.cfg.Client, t)
	}
	pick := r.cfg.Sampler.Pick(SampleID(r.cfg.SampleID, r.m.ID, f.Path), f.Blocks.Count(), r.cfg.SampleBlocks)
	r.mu.Lock()
	way := r.ranges
	r.mu.Unlock()
	res, learned := checks.Sample(r.ctx, r.cfg.Client, t, f.Blocks, pick, way)
	r.learnRanges(f, learned, res)
	return res
}

// learnRanges merges what a sampled check learned of how the mirror's
// server answers ranges into what the run knows, so that the next checks
// ask the way that works, and tells Config.LearnedRanges when that
// changed (in order: under the run's lock).
func (r *run) learnRanges(f File, learned checks.RangeWay, res checks.Result) {
	if !learned.Known() || r.ctx.Err() != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	merged := r.ranges.Merge(learned)
	if merged == r.ranges {
		return
	}
	r.ranges = merged
	why := fmt.Sprintf("%s: %s", f.Path, res.Detail)
	r.log.Debug("learned how the server answers ranges", "way", merged.String(), "why", why)
	if r.cfg.LearnedRanges != nil {
		r.cfg.LearnedRanges(merged, why)
	}
}

// pullFile primes and verifies one file of a pull mirror: with a one-byte
// range and a sample where the cache fills on a range, else with a full
// GET (pullOne).
func (r *run) pullFile(f File) error {
	if r.priming() == PrimeByRange && r.sampled(f) {
		return r.pullRange(f)
	}
	return r.pullOne(f)
}

// pullRange primes f with a one-byte range and verifies it by sampling.
// When the cache's word on the sample is a miss (it may still be
// fetching the file), a later request confirms the fill (confirmFill);
// a file whose fill is not confirmed is primed with a full GET, and a run
// with repeated such evidence and no confirmed fill (primingFrom) primes
// the rest with full GETs, and has the next prime do so from the start.
func (r *run) pullRange(f File) error {
	t := r.target(f)
	var honoured bool
	touch, err := r.request(func() (res checks.Result) { res, honoured = checks.Touch(r.ctx, r.cfg.Client, t); return res })
	if err != nil {
		return err
	}
	switch {
	case touch.Kind == checks.KindOK && !honoured && touch.Hashed:
		// The whole file came (200) and was verified in full.
		r.noteFill(false, fmt.Sprintf("%s: %s", f.Path, touch.Detail))
		return r.emit(f, MethodGet, touch)
	case touch.Kind == checks.KindOK && !honoured:
		r.noteFill(false, fmt.Sprintf("%s: %s", f.Path, touch.Detail))
		return r.pullOne(f)
	case touch.Kind != checks.KindOK:
		return r.emit(f, MethodGet, touch)
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
		return r.emit(f, MethodGet, res)
	}
	if touch.Cache == checks.CacheHit || res.Cache != checks.CacheMiss {
		if touch.Cache != checks.CacheHit && res.Cache == checks.CacheHit {
			r.noteFill(true, "")
		}
		return r.emit(f, MethodGet, primedByRange(res, touch))
	}
	later, hit, err := r.confirmFill(t)
	if err != nil {
		return err
	}
	if hit {
		r.noteFill(true, "")
		return r.emit(f, MethodGet, primedByRange(res, touch, later))
	}
	r.noteFill(false, fmt.Sprintf("%s: the request after a one-byte range was a miss (%s), and so were %d later ones (%s)",
		f.Path, res.CacheStatus, r.cfg.FillTries, later.CacheStatus))
	return r.pullOne(f)
}

// primedByRange records the one-byte prime in the verification's result:
// the prime's cache headers, then ("after:") the verification's, then
// ("later:") those of the request that confirmed the fill, if one did.
func primedByRange(res, touch checks.Result, later ...checks.Result) checks.Result {
	status := func(r checks.Result) string {
		if r.CacheStatus == "" {
			return "no cache headers"
		}
		return r.CacheStatus
	}
	res.CacheStatus = joinDetail(status(touch), "after: "+status(res))
	for _, l := range later {
		res.CacheStatus = joinDetail(res.CacheStatus, "later: "+status(l))
	}
	res.Detail = joinDetail("primed with a one-byte range", res.Detail)
	return res
}
