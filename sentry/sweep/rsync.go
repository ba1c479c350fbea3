package sweep

import (
	"context"
	"math"
	"strings"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// listRsync lists the releases' directories of a mirror with an rsync URL
// in one connection. It returns nil — check every file over HTTP — for a
// mirror without one, for a pull-through cache (what it lists is the
// master's, not what it serves), and when the listing fails (refused, no
// such module, a timeout: noted, not held against the mirror).
func (t *task) listRsync(ctx context.Context, ms *mirrorSweep) map[string]checks.Listed {
	if ms.m.RsyncURL == "" || ms.m.Mode == store.ModePull || len(t.set.releases) == 0 {
		return nil
	}
	sources := make([]string, len(t.set.releases))
	for i, r := range t.set.releases {
		sources[i] = checks.RsyncSource(ms.m.RsyncURL, r.Dir)
	}
	cfg := t.job.Config.Checks
	names := t.set.listed()
	listing, err := checks.ListRsync(ctx, checks.RsyncOptions{ConnectTimeout: cfg.ConnectTimeout.D(),
		IOTimeout: cfg.HeaderTimeout.D(), MaxEntries: 4*len(t.set.files) + 10_000, SourceAddress: cfg.SourceAddress,
		Want: func(name string) bool { return names[name] }}, sources)
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("rsync listing failed; checking the mirror over HTTP", "mirror", ms.m.Name, "err", err)
			ms.sums.Note = "rsync listing failed, checked over HTTP: " + err.Error()
		}
		return nil
	}
	ms.sums.RsyncListed = true
	return listing
}

// listed are the names an rsync listing gives the set's files under
// (the "/./" of checks.RsyncSource: the release directory without its
// leading slash, then the file's path): the only ones a listing keeps.
func (s *set) listed() map[string]bool {
	s.listedOnce.Do(func() {
		s.listedNames = make(map[string]bool, len(s.files))
		for _, f := range s.files {
			s.listedNames[strings.TrimPrefix(f.dir, "/")+f.file.Path] = true
		}
	})
	return s.listedNames
}

// sampleShare is the share of an rsync mirror's files still checked over
// HTTP each sweep (at least one): the proof that the HTTP side serves what
// rsync lists. It rotates, so that every file is checked over HTTP every
// 1/sampleShare sweeps.
const sampleShare = 0.01

// sample picks, by position, the files of an rsync-listed mirror checked
// over HTTP anyway in this sweep: a window of the file list that moves on
// with every run.
func (t *task) sample(ms *mirrorSweep, listing map[string]checks.Listed) map[int]bool {
	n := len(t.set.files)
	if listing == nil || n == 0 {
		return nil
	}
	k := max(1, int(math.Ceil(float64(n)*sampleShare)))
	start := int((t.run.ID*int64(k) + int64(ms.m.ID)) % int64(n))
	out := make(map[int]bool, k)
	for i := range k {
		out[(start+i)%n] = true
	}
	return out
}

// listedAsKnown reports whether a file's listing confirms what sentry knew
// of it: listed with the manifest's size, listed as the last listing said,
// and its state good and verified.
func (t *task) listedAsKnown(ms *mirrorSweep, f file, l checks.Listed, listed bool) bool {
	prev, known := ms.files[f.key]
	return listed && l.Size == f.file.Size && known && prev.Result == string(checks.KindOK) && prev.Verified && !prev.Rehash &&
		prev.Listed == l.Fact()
}

// confirmListed records a file the listing confirmed: what was known,
// counted only, without a request.
func (t *task) confirmListed(ctx context.Context, row *engine.Row, ms *mirrorSweep, i int, f file) {
	res := checks.Result{Kind: checks.KindUnchanged, Bytes: f.file.Size, Attempts: 1, Detail: "listed by rsync as before"}
	t.record(ctx, row, ms, f.file.Path, f.key.ReleaseID, "RSYNC", res, true, "")
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.results[i] = fileResult{seen: true, kind: checks.KindUnchanged, verified: true}
	ms.sums.Checked++
	ms.sums.Unchanged++
	ms.sums.Listed++
}
