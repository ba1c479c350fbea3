// Package record writes checks to the database in batches, from one
// goroutine per process, so that a run costs no database round trip per
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

// Batching parameters. A batch goes to the database when it holds
// batchSize checks or flushEvery has passed, whichever comes first; a
// batch that fails is retried with backoff while checks keep accumulating,
// up to maxPending, after which producers wait (backpressure bounds
// memory while the database is away, and keeps a sweep's memory flat when
// checks outpace the database).
const (
	batchSize  = 5000
	flushEvery = 200 * time.Millisecond
	maxPending = 50_000
	RetryMin   = 200 * time.Millisecond
	RetryMax   = 5 * time.Second
)

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("recorder closed")

// Writer is what a Recorder writes to; *store.Store is one. WriteChecks
// writes a batch in one transaction and returns how many of its checks it
// left out because their fence no longer held (their work was taken over).
type Writer interface {
	WriteChecks(ctx context.Context, checks []store.Check) (fenced int, err error)
}

// Recorder writes checks to the database in batches from one goroutine, so
// that a run costs no database round trip per check. Completed checks are
// never dropped while the recorder runs: when a write fails (the database
// went away, a connection was killed) they stay pending and are written
// when it answers again.
type Recorder struct {
	w   Writer
	log *slog.Logger

	// ctx governs writes; Close cancels it when its own context ends.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	space   *sync.Cond // signalled when pending shrinks or the recorder closes
	pending []store.Check
	added   int64 // checks ever added
	written int64 // checks ever settled (a prefix of added): written or dropped
	dropped int64 // checks the database refused as data
	fenced  int64 // checks left out: their work was taken over
	closed  bool
	lastErr error
	syncs   []syncReq

	kick chan struct{} // wakes the writer early
	done chan struct{} // closed when the writer has stopped
}

type syncReq struct {
	upto int64
	ch   chan struct{}
}

// New starts a recorder writing to w. Close it to write what is pending
// and stop its goroutine.
func New(w Writer, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{w: w, log: log, kick: make(chan struct{}, 1), done: make(chan struct{})}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.space = sync.NewCond(&r.mu)
	go r.loop()
	return r
}

// Add queues a check. It blocks while maxPending checks are waiting
// for the database, until they are written or ctx ends.
func (r *Recorder) Add(ctx context.Context, c store.Check) error {
	r.mu.Lock()
	defer r.mu.Unlock()
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

func (r *Recorder) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Sync waits until every check added before the call is written, or ctx
// ends (then it returns ctx's error).
func (r *Recorder) Sync(ctx context.Context) error {
	r.mu.Lock()
	if r.written >= r.added {
		r.mu.Unlock()
		return nil
	}
	req := syncReq{upto: r.added, ch: make(chan struct{})}
	r.syncs = append(r.syncs, req)
	r.mu.Unlock()
	r.wake()
	select {
	case <-req.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-r.done:
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.written >= req.upto {
			return nil
		}
		return fmt.Errorf("recorder stopped with checks unwritten: %w", r.lastErr)
	}
}

// Stats are a recorder's counts of checks so far.
type Stats struct {
	// Added checks were handed to Add; Written were stored; Dropped were
	// refused by the database as data; Fenced were left out because the
	// work they belonged to was taken over by another sentry.
	Added, Written, Dropped, Fenced int64
}

// Stats returns the recorder's counts so far.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Added: r.added, Written: r.written - r.dropped - r.fenced, Dropped: r.dropped, Fenced: r.fenced}
}

// Close stops accepting checks and writes what is pending, retrying failed
// writes until ctx ends. When ctx ends first it returns an error saying how
// many checks were lost and why.
func (r *Recorder) Close(ctx context.Context) error {
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
	if n := len(r.pending); n > 0 {
		return fmt.Errorf("%d completed checks could not be written: %w", n, r.lastErr)
	}
	return nil
}

func (r *Recorder) loop() {
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
			r.mu.Lock()
			n := min(len(r.pending), batchSize)
			batch := r.pending[:n:n]
			closed := r.closed
			r.mu.Unlock()
			if n == 0 {
				if closed {
					return
				}
				break
			}
			fenced, err := r.w.WriteChecks(r.ctx, batch)
			r.mu.Lock()
			if err == nil && fenced > 0 {
				r.fenced += int64(fenced)
				r.log.Warn("checks of work another sentry took over were not written", "checks", fenced)
			}
			if err == nil {
				// Copy the rest down so the backing array does not grow
				// without bound over a long daemon life.
				rest := copy(r.pending, r.pending[n:])
				clear(r.pending[rest:])
				r.pending = r.pending[:rest]
				r.written += int64(n)
				r.lastErr = nil
				r.releaseSyncs()
				r.space.Broadcast()
			} else if isDataError(err) {
				// The batch itself is bad (a constraint or value the
				// database refuses): retrying cannot help. Say so loudly
				// and drop it rather than block every later check.
				r.log.Error("dropping a batch of checks the database refuses", "checks", n, "err", err)
				rest := copy(r.pending, r.pending[n:])
				clear(r.pending[rest:])
				r.pending = r.pending[:rest]
				r.written += int64(n) // settled, so that Sync does not wait for them
				r.dropped += int64(n)
				r.releaseSyncs()
				r.space.Broadcast()
				err = nil
			} else {
				r.lastErr = err
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

func (r *Recorder) pendingLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// releaseSyncs wakes every Sync whose checks are all written. r.mu is held.
func (r *Recorder) releaseSyncs() {
	kept := r.syncs[:0]
	for _, s := range r.syncs {
		if r.written >= s.upto {
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
		LastModified: res.LastModified, Size: res.Bytes,
	}
}
