package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/store"
)

var errMasterAway = errors.New("the staging master does not answer")

// preparing counts a fake job's Prepare calls, and the most at once.
type preparing struct {
	calls, now, most atomic.Int32
}

func (p *preparing) enter() int32 {
	n := p.now.Add(1)
	for m := p.most.Load(); n > m && !p.most.CompareAndSwap(m, n); m = p.most.Load() {
	}
	return p.calls.Add(1)
}

func (p *preparing) leave() { p.now.Add(-1) }

// TestUnpreparedRunIsWaitedFor: the rows of a run whose work cannot be
// prepared for a while (its master away) wait for it, one try at a time
// for all of them, with backoff, and the worker keeps them meanwhile: no
// row is given back and claimed again (before, every row was, at once,
// and the worker spun on the run), and the run completes once Prepare
// succeeds.
func TestUnpreparedRunIsWaitedFor(t *testing.T) {
	t.Parallel()
	b := setup(t, 4)
	const failures = 3
	var p preparing
	job := newFakeJob()
	job.prepare = func(context.Context, Run) error {
		defer p.leave()
		if p.enter() <= failures {
			return errMasterAway
		}
		return nil
	}
	e := b.engine("default", job, 0, 4)
	e.opts.PrepareRetry = 10 * time.Millisecond
	fin, err := e.Drive(b.ctx, request(store.RunPrime, b.mirrors))
	if err != nil {
		t.Fatal(err)
	}
	if fin.Outcome != store.OutcomeCompleted {
		t.Fatalf("run %s %q, want completed", fin.Outcome, fin.Reason)
	}
	if n := p.calls.Load(); n != failures+1 {
		t.Errorf("Prepare called %d times, want %d: once per try, not once per row", n, failures+1)
	}
	if m := p.most.Load(); m != 1 {
		t.Errorf("%d Prepare calls at once, want one at a time", m)
	}
	var claims int
	b.scalar(`SELECT max(claims) FROM sentry_work WHERE run_id = $1`, &claims, fin.Run.ID)
	if claims != 1 {
		t.Errorf("a row was claimed %d times, want once: given back while its run could not be prepared", claims)
	}
	if worked, _ := job.count(fin.Run.ID); worked != len(b.mirrors) {
		t.Errorf("worked %d rows, want %d", worked, len(b.mirrors))
	}
}

// TestUnpreparedRowGivenBackAfterPrepareFor: a row whose run still cannot
// be prepared after PrepareFor is given back (for an instance that may
// fare better) and claimed again; the run completes once Prepare succeeds.
func TestUnpreparedRowGivenBackAfterPrepareFor(t *testing.T) {
	t.Parallel()
	b := setup(t, 1)
	var away atomic.Bool
	away.Store(true)
	var p preparing
	job := newFakeJob()
	job.prepare = func(context.Context, Run) error {
		defer p.leave()
		p.enter()
		if away.Load() {
			return errMasterAway
		}
		return nil
	}
	e := b.engine("default", job, 0, 1)
	e.opts.PrepareRetry, e.opts.PrepareFor = 10*time.Millisecond, 50*time.Millisecond
	done := make(chan error, 1)
	var fin *Finished
	go func() {
		var err error
		fin, err = e.Drive(b.ctx, request(store.RunPrime, b.mirrors))
		done <- err
	}()
	b.until("the row given back and claimed again", func() bool {
		var claims int
		b.scalar(`SELECT coalesce(max(claims), 0) FROM sentry_work`, &claims)
		return claims >= 2
	})
	away.Store(false)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fin.Outcome != store.OutcomeCompleted {
		t.Errorf("run %s %q, want completed", fin.Outcome, fin.Reason)
	}
	if m := p.most.Load(); m != 1 {
		t.Errorf("%d Prepare calls at once, want one at a time", m)
	}
}
