// Package record writes checks to the database in batches, from a few
// goroutines per process, so that a run costs no database round trip per
// check, and keeps completed checks through a database outage.
package record

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// Batching parameters, per lane (Recorder). A batch goes to the database
// when it holds batchSize checks or flushEvery has passed, whichever comes
// first; a batch that fails is retried with backoff while checks keep
// accumulating, up to maxPending, after which producers wait (backpressure bounds
// memory while the database is away, and keeps a sweep's memory flat when
// checks outpace the database). Routine checks (store.Check.Routine) are
// only counted, in memory, and their counts go out when someone waits for
// them (Sync: a mirror's work is done), every countEvery, or at Close: a
// mirror's sweep costs one count per hour and result, not one per check.
const (
	batchSize  = 5000
	flushEvery = 200 * time.Millisecond
	countEvery = 10 * time.Second
	maxPending = 50_000
	maxCounts  = 10_000
	RetryMin   = 200 * time.Millisecond
	RetryMax   = 5 * time.Second
)

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("recorder closed")

// Writer is what a Recorder writes to; *store.Store is one. WriteChecks
// writes a batch in one transaction and returns how many of its checks it
// left out because their fence no longer held (their work was taken over).
type Writer interface {
	WriteChecks(ctx context.Context, b store.Batch) (fenced int, err error)
}

// Recorder writes checks to the database in batches, so that a run costs
// no database round trip per check. Completed checks are never dropped
// while the recorder runs: when a write fails (the database went away, a
// connection was killed) they stay pending and are written when it
// answers again.
//
// It writes from lanes goroutines, each with a connection's transaction
// at a time, a mirror's checks (and counts) always in the same lane: the
// checks of one (mirror, file) are written in the order they were added,
// two lanes never touch the same rows, and the database's work on a batch
// (one backend's CPU: the COPY, the file-state upsert) runs on as many
// cores as there are lanes.
type Recorder struct {
	lanes []*lane
}

// lanes is how many writers a Recorder has.
const lanes = 2

// lane is one writer of a Recorder: what it has pending, and the
// goroutine writing it.
type lane struct {
	w   Writer
	log *slog.Logger

	// ctx governs writes; Close cancels it when its own context ends.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	space   *sync.Cond // signalled when pending shrinks or the recorder closes
	pending []store.Check
	counts  map[store.CountKey]*store.Count
	// added and written count checks with a row; counted and flushed
	// count routine checks (flushed: those whose counts are written).
	added, written   int64
	counted, flushed int64
	// partial counts routine checks written by counts of some mirrors
	// only (SyncMirror), not yet in flushed; flying is the mirrors whose
	// counts are being written.
	partial    int64
	flying     map[int]bool
	dropped    int64 // checks the database refused as data
	fenced     int64 // checks left out: their work was taken over
	closed     bool
	lastErr    error
	lastCounts time.Time
	syncs      []*syncReq

	kick chan struct{} // wakes the writer early
	done chan struct{} // closed when the writer has stopped
}

// syncReq is a wait for what was added before it: every check (written
// must reach checks) and either every count (all: flushed must reach
// counts) or the counts of one mirror (none of them left unwritten).
type syncReq struct {
	checks, counts int64
	all            bool
	mirror         int
	ch             chan struct{}
}

// New starts a recorder writing to w. Close it to write what is pending
// and stop its goroutines.
func New(w Writer, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{lanes: make([]*lane, lanes)}
	for i := range r.lanes {
		r.lanes[i] = newLane(w, log)
	}
	return r
}

// laneOf is the lane of a mirror's checks.
func (r *Recorder) laneOf(mirrorID int) *lane {
	return r.lanes[uint(mirrorID)%uint(len(r.lanes))]
}

// Add queues a check. A routine check is only counted. Add blocks while
// its lane has maxPending checks waiting for the database, until they are
// written or ctx ends.
func (r *Recorder) Add(ctx context.Context, c store.Check) error {
	return r.laneOf(c.MirrorID).add(ctx, c)
}

// Sync waits until every check added before the call is written (counted,
// for a routine one), or ctx ends (then it returns ctx's error).
func (r *Recorder) Sync(ctx context.Context) error {
	reqs := make([]*syncReq, len(r.lanes))
	for i, l := range r.lanes {
		reqs[i] = l.request(true, 0)
	}
	for i, l := range r.lanes {
		if err := l.wait(ctx, reqs[i]); err != nil {
			return err
		}
	}
	return nil
}

// SyncMirror waits until every check of mirrorID added before the call is
// written (counted, for a routine one), or ctx ends. Only that mirror's
// counts are written for it: a mirror's work done costs one write of its
// own counts, not one of every mirror's still being checked.
func (r *Recorder) SyncMirror(ctx context.Context, mirrorID int) error {
	l := r.laneOf(mirrorID)
	return l.wait(ctx, l.request(false, mirrorID))
}

// Stats returns the recorder's counts so far.
func (r *Recorder) Stats() Stats {
	var s Stats
	for _, l := range r.lanes {
		ls := l.stats()
		s.Added += ls.Added
		s.Routine += ls.Routine
		s.Written += ls.Written
		s.Dropped += ls.Dropped
		s.Fenced += ls.Fenced
	}
	return s
}

// Close stops accepting checks and writes what is pending, retrying failed
// writes until ctx ends. When ctx ends first it returns an error saying how
// many checks were lost and why.
func (r *Recorder) Close(ctx context.Context) error {
	lost := make([]int64, len(r.lanes))
	errs := make([]error, len(r.lanes))
	var wg sync.WaitGroup
	for i, l := range r.lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lost[i], errs[i] = l.close(ctx)
		}()
	}
	wg.Wait()
	var n int64
	var why []error
	for i := range r.lanes {
		if lost[i] > 0 {
			n += lost[i]
			why = append(why, errs[i])
		}
	}
	if n > 0 {
		return fmt.Errorf("%d completed checks could not be written: %w", n, errors.Join(why...))
	}
	return nil
}

func newLane(w Writer, log *slog.Logger) *lane {
	r := &lane{w: w, log: log, kick: make(chan struct{}, 1), done: make(chan struct{}),
		counts: map[store.CountKey]*store.Count{}, flying: map[int]bool{}, lastCounts: time.Now()}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.space = sync.NewCond(&r.mu)
	go r.loop()
	return r
}

// add queues a check (Recorder.Add).
func (r *lane) add(ctx context.Context, c store.Check) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if c.Routine {
		n := store.CountOf(c)
		k := n.Key()
		if have := r.counts[k]; have != nil {
			have.N++
			if c.CheckedAt.After(have.Last) {
				have.Last = c.CheckedAt
			}
		} else {
			first := new(store.Count) // on the heap only when the key is new
			*first = n
			r.counts[k] = first
		}
		r.counted++
		if len(r.counts) >= maxCounts {
			r.wake()
		}
		return nil
	}
	if len(r.pending) >= maxPending {
		stop := context.AfterFunc(ctx, func() {
			r.mu.Lock()
			r.space.Broadcast()
			r.mu.Unlock()
		})
		defer stop()
		for len(r.pending) >= maxPending && !r.closed && ctx.Err() == nil {
			r.space.Wait()
		}
	}
	if r.closed {
		return ErrClosed
	}
	if len(r.pending) >= maxPending {
		return ctx.Err() // gave up waiting for room
	}
	// A completed check is kept even when ctx has ended (a shutdown):
	// ctx only bounds the wait for room.
	r.pending = append(r.pending, c)
	r.added++
	if len(r.pending) >= batchSize {
		r.wake()
	}
	return nil
}

func (r *lane) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// request registers a wait for every check added so far to be written,
// and every count (all) or mirror's; nil when they are.
func (r *lane) request(all bool, mirror int) *syncReq {
	r.mu.Lock()
	defer r.mu.Unlock()
	req := &syncReq{checks: r.added, counts: r.counted, all: all, mirror: mirror, ch: make(chan struct{})}
	if r.satisfied(req) {
		return nil
	}
	r.syncs = append(r.syncs, req)
	r.wake()
	return req
}

// satisfied reports whether what s waits for is written. r.mu is held.
func (r *lane) satisfied(s *syncReq) bool {
	if r.written < s.checks {
		return false
	}
	if s.all {
		return r.flushed >= s.counts
	}
	if r.flying[s.mirror] {
		return false
	}
	for k := range r.counts {
		if k.MirrorID == s.mirror {
			return false
		}
	}
	return true
}

// wait waits for req (nil: nothing to wait for), or for ctx to end.
func (r *lane) wait(ctx context.Context, req *syncReq) error {
	if req == nil {
		return nil
	}
	select {
	case <-req.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-r.done:
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.satisfied(req) {
			return nil
		}
		return fmt.Errorf("recorder stopped with checks unwritten: %w", r.lastErr)
	}
}

// Stats are a recorder's counts of checks so far.
type Stats struct {
	// Added checks were handed to Add (Routine of them only counted);
	// Written were stored (rows, or counts of routine ones); Dropped were
	// refused by the database as data; Fenced were left out because the
	// work they belonged to was taken over by another sentry.
	Added, Routine, Written, Dropped, Fenced int64
}

func (r *lane) stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Added: r.added + r.counted, Routine: r.counted,
		Written: r.written + r.flushed + r.partial - r.dropped - r.fenced, Dropped: r.dropped, Fenced: r.fenced}
}

// close stops accepting checks and writes what is pending (Recorder.Close).
// It returns how many checks it could not write, and the last write's
// error.
func (r *lane) close(ctx context.Context) (int64, error) {
	r.mu.Lock()
	r.closed = true
	r.space.Broadcast()
	r.mu.Unlock()
	r.wake()
	stop := context.AfterFunc(ctx, r.cancel)
	defer stop()
	<-r.done
	r.cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	return int64(len(r.pending)) + r.counted - r.flushed - r.partial, r.lastErr
}

// take is the next batch to write: up to batchSize pending checks and the
// counts that are due (taken out of the map: a failed write puts them
// back): all of them when they are due (countEvery, maxCounts, Close, a
// Sync), else those of the mirrors a SyncMirror waits for. A batch of all
// counts reports, in counted, how many routine checks are then flushed;
// one of some mirrors' counts, in partial, how many routine checks it
// stands for.
func (r *lane) take(now time.Time) (b store.Batch, n int, counted, partial int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n = min(len(r.pending), batchSize)
	b.Checks = r.pending[:n:n]
	due := r.closed || len(r.counts) >= maxCounts || now.Sub(r.lastCounts) >= countEvery
	var mirrors map[int]bool
	for _, s := range r.syncs {
		switch {
		case s.all:
			due = due || s.counts > r.flushed
		case mirrors == nil:
			mirrors = map[int]bool{s.mirror: true}
		default:
			mirrors[s.mirror] = true
		}
	}
	switch {
	case due && len(r.counts) > 0:
		b.Counts = make([]store.Count, 0, len(r.counts))
		for k, c := range r.counts {
			b.Counts = append(b.Counts, *c)
			r.flying[k.MirrorID] = true
		}
		clear(r.counts)
		counted = r.counted
		r.lastCounts = now
	case due:
		r.flushed, r.partial = r.counted, 0
		r.releaseSyncs()
	case mirrors != nil:
		for k, c := range r.counts {
			if mirrors[k.MirrorID] {
				b.Counts = append(b.Counts, *c)
				partial += c.N
				r.flying[k.MirrorID] = true
				delete(r.counts, k)
			}
		}
		if n == 0 && len(b.Counts) == 0 {
			r.releaseSyncs()
		}
	}
	return b, n, counted, partial
}

func (r *lane) loop() {
	defer close(r.done)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-r.kick:
		case <-tick.C:
		case <-r.ctx.Done():
			return
		}
		for {
			b, n, counted, partial := r.take(time.Now())
			r.mu.Lock()
			closed := r.closed
			idle := len(r.pending) == 0 && len(r.counts) == 0
			r.mu.Unlock()
			if n == 0 && len(b.Counts) == 0 {
				if closed && idle {
					return
				}
				break
			}
			fenced, err := r.w.WriteChecks(r.ctx, b)
			r.mu.Lock()
			if err == nil && fenced > 0 {
				r.fenced += int64(fenced)
				r.log.Warn("checks of work another sentry took over were not written", "checks", fenced)
			}
			switch {
			case err == nil:
				r.settle(n, counted, partial)
				r.lastErr = nil
			case isDataError(err):
				// The batch itself is bad (a constraint or value the
				// database refuses): retrying cannot help. Say so loudly
				// and drop it rather than block every later check.
				r.log.Error("dropping a batch of checks the database refuses", "checks", n, "counts", len(b.Counts), "err", err)
				r.dropped += int64(n)
				r.settle(n, counted, partial)
				err = nil
			default:
				r.lastErr = err
				r.restore(b.Counts)
			}
			r.mu.Unlock()
			if err == nil {
				backoff = 0
				continue
			}
			if r.ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, RetryMin), RetryMax)
			r.log.Warn("writing checks failed; keeping them and retrying", "pending", r.pendingLen(), "retry_in", backoff, "err", err)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-r.ctx.Done():
				t.Stop()
				return
			}
		}
	}
}

// settle takes n written checks off pending, and marks the routine checks
// counted up to counted (when all counts went out) flushed, or partial
// more of them written (when some mirrors' counts went out). r.mu is held.
func (r *lane) settle(n int, counted, partial int64) {
	// Copy the rest down so the backing array does not grow without
	// bound over a long daemon life.
	rest := copy(r.pending, r.pending[n:])
	clear(r.pending[rest:])
	r.pending = r.pending[:rest]
	r.written += int64(n)
	if counted > r.flushed {
		r.flushed, r.partial = counted, 0
	} else {
		r.partial += partial
	}
	clear(r.flying)
	r.releaseSyncs()
	r.space.Broadcast()
}

// restore puts counts that could not be written back. r.mu is held.
func (r *lane) restore(counts []store.Count) {
	clear(r.flying)
	for _, c := range counts {
		k := c.Key()
		if have := r.counts[k]; have != nil {
			have.N += c.N
			if c.Last.After(have.Last) {
				have.Last = c.Last
			}
		} else {
			c := c
			r.counts[k] = &c
		}
	}
}

func (r *lane) pendingLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// releaseSyncs wakes every Sync whose checks are all written. r.mu is held.
func (r *lane) releaseSyncs() {
	kept := r.syncs[:0]
	for _, s := range r.syncs {
		if r.satisfied(s) {
			close(s.ch)
		} else {
			kept = append(kept, s)
		}
	}
	r.syncs = kept
}

// isDataError reports whether err is PostgreSQL refusing the data itself
// (SQLSTATE classes 22, data exception, and 23, integrity violation), as
// opposed to the database being unreachable.
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23"))
}

// Check is the record of one check: res, of the file at path of release
// releaseID (0 and "" for a check of the mirror itself), made with method
// at at, from vantage. The engine's Row.Record sets its run, mirror and
// fence.
func Check(res checks.Result, releaseID int64, path, method string, at time.Time, vantage string) store.Check {
	return store.Check{
		ReleaseID: releaseID, Path: path, CheckedAt: at, Vantage: vantage, Method: method,
		Result: string(res.Kind), Status: res.Status, Bytes: res.Bytes, Hashed: res.Hashed, Duration: res.Duration,
		Attempts: res.Attempts, CacheStatus: res.CacheStatus, Detail: res.Detail, ETag: res.ETag,
		LastModified: res.LastModified, Size: res.Bytes, SampleBlocks: res.Sampled, FileBlocks: res.Blocks,
	}
}
