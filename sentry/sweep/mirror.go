package sweep

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/checks/safetext"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/engine"
	"github.com/mirrorsentry/sentry/sentry/mirrorjob"
	"github.com/mirrorsentry/sentry/sentry/record"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// mirrorSweep is one mirror's sweep in progress.
type mirrorSweep struct {
	m       store.Mirror
	files   map[store.FileKey]store.FileState
	mu      sync.Mutex
	results []fileResult // by index in set.files; nil for a row without files
	sums    MirrorSums
	failAt  time.Time
	// stopped: the sweep of the mirror could not be finished here.
	stopped bool
	// catchUp is what is left of the bytes this sweep may hash to catch
	// up on the mirror's files (sweep.catch_up_bytes).
	catchUp atomic.Int64
	// admin is what this vantage point found besides reachability.
	admin adminVerdict
	// fileFamilies are the families each file is checked over (a
	// dual-stack mirror answering over each: families.go); none: once.
	fileFamilies []checks.Family
}

type fileResult struct {
	seen     bool // checked (or confirmed by a listing) in this sweep
	kind     checks.Kind
	verified bool // known right: hashed now, or hashed before and unchanged since
	// withheld: present but not verified, where it must be before it is
	// offered (decide.Withheld).
	withheld bool
	hashed   bool
}

// Work does this vantage point's part of one mirror's sweep: its
// reachability and, when still to do and the mirror answers, its files.
func (t *task) Work(ctx context.Context, row *engine.Row) (engine.Result, bool) {
	m, ok := t.mirrors[row.MirrorID]
	if !ok {
		return engine.Result{Files: rowResult{Gone: true}}, true
	}
	defer t.job.Client.Forget(m.BaseURL)
	if in, why := t.inWindow(m.ID); in {
		v, files := t.maintenance(row, m, why)
		if files != nil {
			return engine.Result{Verdict: v, Files: *files}, true
		}
		return engine.Result{Verdict: v}, true
	}
	ctx = checks.Paced(ctx, t.job.Config.MirrorRate(m.MaxRate))
	ms := &mirrorSweep{m: m, sums: MirrorSums{ID: m.ID, Name: m.Name, Failures: map[checks.Kind]int{}}}
	if row.Files {
		ms.results = make([]fileResult, len(t.set.files))
	}
	ms.catchUp.Store(t.job.Config.Sweep.CatchUpBytes.Bytes())
	kind := t.sweepMirror(ctx, row, ms)
	if ms.stopped {
		return engine.Result{}, false
	}
	if !ms.sums.Reachable {
		return engine.Result{Unreachable: true,
			Verdict: verdict{Failed: true, Kind: string(kind), Why: ms.sums.FirstFailure, adminVerdict: ms.admin}}, true
	}
	if !row.Files {
		return engine.Result{Verdict: verdict{Reachable: true, adminVerdict: ms.admin}}, true
	}
	good, missing, withheld, verified := t.settle(ms)
	ms.sums.Withheld = len(withheld)
	v := verdict{Reachable: true, Failed: decide.FailedWholesale(true, ms.sums.OK+ms.sums.Unchanged, ms.sums.Failures),
		adminVerdict: ms.admin}
	if v.Failed {
		v.Why = ms.sums.FirstFailure
	}
	return engine.Result{Verdict: v, Files: rowResult{Sums: ms.sums, Good: good, Missing: missing, Withheld: withheld,
		Verified: verified}}, true
}

// sweepMirror checks a mirror's reachability and, when the row's files
// are to do, its files. It returns the kind of the reachability check.
func (t *task) sweepMirror(ctx context.Context, row *engine.Row, ms *mirrorSweep) checks.Kind {
	start := time.Now()
	defer func() { ms.sums.Seconds = time.Since(start).Seconds() }()
	if row.Files {
		// The row is this process's: wait out a passing outage rather
		// than give the mirror back unchecked.
		err := engine.Retry(ctx, t.log.With("mirror_id", ms.m.ID), "reading file states", engine.MarkRetryFor, func() (err error) {
			ms.files, err = t.job.Store.MirrorFileStates(ctx, ms.m.ID, t.set.releaseIDs, len(t.set.files))
			return err
		})
		if err != nil {
			ms.stopped, ms.sums.Note = true, "could not read file states: "+err.Error()
			return checks.KindInternal
		}
	}
	if t.job.Global.Acquire(ctx, 1) != nil {
		ms.stopped = true
		return checks.KindInternal
	}
	// A mirror that answers is what was known of it: counted only.
	reach, fams, pin := t.reachMirror(ctx, row, ms)
	t.job.Global.Release(1)
	if mirrorjob.Stopped(ctx, reach) {
		ms.stopped = true
		return reach.Kind
	}
	ms.admin.Families, ms.admin.Cert = fams, reach.Cert
	if pin != "" {
		ctx = checks.WithFamily(ctx, pin) // one family is broken: the files over one that answers
	} else {
		ms.fileFamilies = mirrorjob.FileFamilies(fams) // every family answers: the files over each
	}
	ms.sums.Reachable = !reach.Kind.Failed()
	if !ms.sums.Reachable {
		ms.sums.FirstFailure = mirrorjob.FailureLine(safetext.URL(ms.m.BaseURL), reach)
		ms.sums.Failures[reach.Kind]++
		return reach.Kind
	}
	if !row.Files {
		return reach.Kind
	}
	var hash []bool // by index in set.files, as every per-file slice here
	if t.deep {
		hash = pickForHash(t.set.files, ms.files, t.now, t.job.Config.Sweep.DeepPeriod.D(), t.gap)
	} else {
		hash = make([]bool, len(t.set.files))
	}
	// A returning mirror's files not hashed since it was suspended are
	// hashed by the catch-up (checkFile); what is left of them after the
	// sweep says whether its return is complete.
	back := make([]bool, len(t.set.files))
	if t.returning(ms, back) > 0 {
		defer func() { ms.sums.ReturnLeft = t.returnLeft(ms, back) }()
	}
	conc := t.job.Config.MirrorConcurrency(ms.m.MaxConcurrency)
	listing := t.listRsync(ctx, ms)
	sample := t.sample(ms, listing)
	// conc workers take the files in turn, each the next by its index: a
	// goroutine (and its grown stack) per worker, not per file, and no
	// hand-over between goroutines per file.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(conc, len(t.set.files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(t.set.files) {
					return
				}
				f := t.set.files[i]
				fact := ""
				if listing != nil {
					l, ok := listing[strings.TrimPrefix(f.dir, "/")+f.file.Path]
					if ok {
						fact = l.Fact()
					}
					if !hash[i] && !sample[i] && t.listedAsKnown(ms, f, l, ok) {
						t.confirmListed(ctx, row, ms, i, f)
						continue
					}
				}
				if t.job.Global.Acquire(ctx, 1) != nil {
					return
				}
				t.checkFile(ctx, row, ms, i, f, hash[i], fact)
				t.job.Global.Release(1)
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		ms.stopped = true
	}
	return reach.Kind
}

// tally adds the result of file i to the mirror's sweep.
func (t *task) tally(ms *mirrorSweep, i int, f file, res checks.Result, fr fileResult) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	fr.seen, fr.hashed = true, res.Hashed
	ms.results[i] = fr
	ms.sums.Checked++
	switch {
	case res.Kind == checks.KindUnchanged:
		ms.sums.Unchanged++
	case res.Kind == checks.KindOK:
		ms.sums.OK++
	default:
		ms.sums.Failed++
		ms.sums.Failures[res.Kind]++
		mirrorjob.KeepEarliest(&ms.failAt, &ms.sums.FirstFailure, time.Now(), f.file.Path, res)
	}
	if res.Hashed {
		ms.sums.Hashed++
	}
}

// record hands a check to the recorder (routine: only counted) and tells
// the observers.
func (t *task) record(ctx context.Context, row *engine.Row, ms *mirrorSweep, path string, releaseID int64, method string,
	res checks.Result, routine bool, listed string) {
	c := record.Check(res, releaseID, path, method, t.job.now(), t.job.Config.Vantage)
	c.Routine, c.Listed, c.Family = routine, listed, string(checks.FamilyOf(ctx))
	mirrorjob.Record(ctx, row, t.job.Observer, t.run, ms.m, c, res)
}

// settle reduces a finished mirror to what marking needs: the locations
// its files say are good, missing and withheld (decide.Location: every
// language's file counts, whatever the mirror's language exceptions say),
// and whether any file is known right there.
func (t *task) settle(ms *mirrorSweep) (good, missing, withheld []int, verified bool) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for _, r := range ms.results {
		verified = verified || r.verified
	}
	for _, l := range t.set.locations {
		files := make([]decide.File, len(l.files))
		for i, lk := range l.files {
			var r fileResult
			if lk.file < len(ms.results) {
				r = ms.results[lk.file]
			}
			files[i] = decide.File{Checked: r.seen, Kind: r.kind, Verified: r.verified, Withheld: r.withheld}
		}
		switch decide.Location(files) {
		case decide.Missing:
			missing = append(missing, l.id)
		case decide.Good:
			good = append(good, l.id)
		case decide.Withheld:
			withheld = append(withheld, l.id)
		}
	}
	ms.results, ms.files = nil, nil
	return good, missing, withheld, verified
}
