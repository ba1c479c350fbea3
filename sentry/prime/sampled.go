package prime

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/primer"
	"github.com/mirrorsentry/sentry/sentry/engine"
)

// A sampled prime (verify.mode sampled) verifies a file by its size and
// verify.sample_blocks of its blocks, compared with the block digests of
// the master's copy (package release), and primes a pull-through cache
// that keeps what it fetches for a range with one byte per file (package
// primer, which learns it per mirror; this job remembers what was learned
// in sentry_mirror_priming). How each mirror's server answers ranges, as
// its sampled checks learn it, is remembered in sentry_mirror_ranges, so
// that the next check asks the way that works.

// randomSampler is the sampler of jobs given none: a secret random seed,
// so that no mirror can tell which blocks will be read.
var randomSampler = sync.OnceValue(func() *checks.Sampler { return checks.NewSampler(nil) })

func (j *Job) sampler() *checks.Sampler {
	if j.Sampler != nil {
		return j.Sampler
	}
	return randomSampler()
}

// prepareSampling reads, for a sampled prime, what earlier primes learned
// of how each mirror is primed and how its server answers ranges. The
// block digests of the files come from the master's copy as it is read
// (sample: primer.Config.Ready).
func (t *task) prepareSampling(ctx context.Context) error {
	if !t.job.Config.Verify.Sampled() {
		return nil
	}
	var err error
	if t.primings, err = t.job.Store.Primings(ctx); err != nil {
		return err
	}
	t.ranges, err = t.job.Store.RangeWays(ctx)
	return err
}

// sample sets a sampled prime of one mirror up in its primer
// configuration: each file gets the block digests of the master's copy
// when it is first checked, waiting for that file's read from the master
// only (primer.Config.Ready) — but those whose bytes a check found wrong
// before (a checksum mismatch, a body too large), which are verified in
// full, since a sample of right blocks cannot clear a difference that may
// be one block.
func (t *task) sample(ctx context.Context, row *engine.Row, mp *mirrorPrime, pc *primer.Config, pm *primer.Mirror, files []primer.File) []primer.File {
	v := t.job.Config.Verify
	if !v.Sampled() {
		return files
	}
	pc.Sampled, pc.Sampler, pc.SampleBlocks, pc.SampleID = true, t.job.sampler(), v.SampleBlocks, strconv.FormatInt(t.run.ID, 10)
	pm.Priming = primer.Priming(t.primings[mp.m.ID].By)
	log := t.log.With("mirror", mp.m.Name)
	pc.Learned = func(by primer.Priming, why string) {
		log.Info("learned how the mirror is primed", "by", string(by), "why", why)
		if err := t.job.Store.SavePriming(ctx, mp.m.ID, string(by), why, row.Fence()); err != nil && ctx.Err() == nil {
			log.Warn("could not remember how the mirror is primed; the next prime learns it again", "err", err)
		}
	}
	pm.Ranges = t.ranges[mp.m.ID].Way
	pc.LearnedRanges = func(way checks.RangeWay, why string) {
		log.Info("learned how the mirror's server answers ranges", "way", way.String(), "why", why)
		if err := t.job.Store.SaveRangeWay(ctx, mp.m.ID, way, why, row.Fence()); err != nil && ctx.Err() == nil {
			log.Warn("could not remember how the mirror's server answers ranges; the next prime learns it again", "err", err)
		}
	}
	inFull, err := t.job.Store.MismatchedFiles(ctx, t.plan.Release.ID, mp.m.ID)
	all := false
	if err != nil {
		// Which files are known wrong is unknown: verify every file in
		// full rather than let a sample pass one of them.
		log.Warn("could not read the files found wrong before; verifying every file in full", "err", err)
		all = true
	}
	master := t.plan.Master
	pc.Ready = func(ctx context.Context, f primer.File) (primer.File, error) {
		if all || inFull[f.Path] {
			f.Blocks = checks.Blocks{}
			return f, nil
		}
		if f.Blocks.Count() > 0 {
			return f, nil
		}
		b, err := master.Blocks(ctx, f.Path)
		if err != nil {
			return f, err
		}
		f.Blocks = b
		return f, nil
	}
	return files
}

// sampledNote says, in a mirror's sentry_log line, how many of its files
// were verified by sampling.
func sampledNote(s *MirrorSums) string {
	if s.FilesSampled == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d by sampling blocks)", s.FilesSampled)
}
