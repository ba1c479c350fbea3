package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestJudgeRetriedUntilItSucceeds: a judgement that fails (its database
// connection cut, say) is given back and judged again, by whichever sentry
// looks next; the run then ends, announced once.
func TestJudgeRetriedUntilItSucceeds(t *testing.T) {
	b := setup(t, 4)
	job := newFakeJob()
	var fails atomic.Int32
	var after atomic.Int32
	job.judge = func(ctx context.Context, j *Judgement) (Ending, error) {
		if fails.Add(1) <= 2 {
			return Ending{}, errors.New("connection terminated by the test")
		}
		return Ending{Outcome: store.OutcomeCompleted, After: func() { after.Add(1) }}, nil
	}
	b.daemon(b.engine("default", job, 0, 4))
	fin, err := b.engine("default", job, 0, 4).Drive(b.ctx, request(store.RunSweep, b.mirrors))
	if err != nil {
		t.Fatal(err)
	}
	if fin.Outcome != store.OutcomeCompleted {
		t.Errorf("outcome %s %q, want completed", fin.Outcome, fin.Reason)
	}
	if _, judged := job.count(fin.Run.ID); judged != 3 {
		t.Errorf("judged %d times, want 3 (two failures, then success)", judged)
	}
	if got := b.ended.of(fin.Run.ID); len(got) != 1 || after.Load() != 1 {
		t.Errorf("end announced %v, after-hook %d times; want once each", got, after.Load())
	}
	var attempts int
	var lastErr string
	b.scalar(`SELECT judge_attempts FROM sentry_runs WHERE id = $1`, &attempts, fin.Run.ID)
	b.scalar(`SELECT judge_error FROM sentry_runs WHERE id = $1`, &lastErr, fin.Run.ID)
	if attempts != 2 || !strings.Contains(lastErr, "terminated by the test") {
		t.Errorf("recorded %d failed attempts (%q), want 2", attempts, lastErr)
	}
}

// TestJudgementThatKeepsFailingEndsTheRun: a run whose judgement keeps
// failing does not stay running: once JudgeFor passed since its last row,
// it ends as failed, naming the error, and the next scheduled sweep can
// start.
func TestJudgementThatKeepsFailingEndsTheRun(t *testing.T) {
	b := setup(t, 2)
	job := newFakeJob()
	job.judge = func(context.Context, *Judgement) (Ending, error) {
		return Ending{}, errors.New("the same error, forever")
	}
	e := b.engine("default", job, 0, 4)
	e.opts.JudgeFor = 2 * time.Second
	w := b.daemon(e)
	req := request(store.RunSweep, b.mirrors)
	req.Worker, req.Slot = w, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	fin, err := e.Drive(b.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if fin.Outcome != store.OutcomeFailed || !strings.Contains(fin.Reason, "could not be judged") ||
		!strings.Contains(fin.Reason, "the same error, forever") {
		t.Errorf("ended %s %q; want failed, naming the error", fin.Outcome, fin.Reason)
	}
	job.judge = nil
	req.Slot = req.Slot.Add(time.Hour)
	if fin, err := e.Drive(b.ctx, req); err != nil || fin.Outcome != store.OutcomeCompleted {
		t.Errorf("the next scheduled sweep: %+v, %v", fin, err)
	}
}

// TestJudgingFenced: a judging taken over (its holder silent past the
// lease) cannot end the run nor mark under its old token; the new judge
// can; the end is announced once, by the judgement that recorded it.
func TestJudgingFenced(t *testing.T) {
	b := setup(t, 1)
	job := newFakeJob()
	e := b.engine("default", job, 0, 4)
	a, c := b.worker(e, RoleDaemon), b.worker(e, RoleDaemon)
	run, rows := b.start(a, store.RunSweep, false, 1, b.mirrors...)
	if ok, err := e.complete(b.ctx, rows[0].fence, a.id, Result{Files: 1}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	first, err := e.claimJudging(b.ctx, a)
	if err != nil || len(first) != 1 {
		t.Fatalf("first judge: %v %v", first, err)
	}
	if again, _ := e.claimJudging(b.ctx, c); len(again) != 0 {
		t.Errorf("a judging under a live lease claimed by another: %v", again)
	}
	b.exec(`UPDATE sentry_runs SET judge_until = now() - interval '1s' WHERE id = $1`, run.ID)
	second, err := e.claimJudging(b.ctx, c)
	if err != nil || len(second) != 1 || second[0].fence.token == first[0].fence.token {
		t.Fatalf("takeover of the judging: %v %v", second, err)
	}
	mark := store.MirrorMarks{MirrorID: b.mirrors[0], LogDate: run.StartedAt, Reason: "r", Fence: first[0].fence}
	if err := b.st.MarkMirror(b.ctx, mark); !errors.Is(err, store.ErrFenced) {
		t.Errorf("marks of the former judge: %v, want ErrFenced", err)
	}
	if ok, err := e.end(b.ctx, run.ID, store.OutcomeCompleted, "old", &first[0].fence, nil); ok || err != nil {
		t.Errorf("the former judge ended the run: %v %v", ok, err)
	}
	e.judge(b.ctx, c, second[0])
	e.judge(b.ctx, a, first[0])
	if b.outcome(run.ID) != store.OutcomeCompleted {
		t.Errorf("run %s after the new judge", b.outcome(run.ID))
	}
	if got := b.ended.of(run.ID); len(got) != 1 {
		t.Errorf("end announced %v, want once", got)
	}
}

// TestSlowJudgementKeepsItsLease: a judgement whose write takes longer
// than its lease (a mark waiting on a lock of the bouncer tables, say) is
// not fenced out by its own fence's lock: the process's heartbeats go on
// renewing the judging meanwhile, and the run ends.
func TestSlowJudgementKeepsItsLease(t *testing.T) {
	b := setup(t, 1)
	job := newFakeJob()
	renewals := make(chan struct{})
	job.judge = func(ctx context.Context, j *Judgement) (Ending, error) {
		tx, err := b.st.Pool().Begin(ctx)
		if err != nil {
			return Ending{}, err
		}
		defer tx.Rollback(context.Background())
		if ok, err := j.Fence().Holds(ctx, tx); err != nil || !ok {
			return Ending{}, fmt.Errorf("fence: %v %v", ok, err)
		}
		// Hold the fence's lock until the heartbeat renewed the judging
		// past where the lease would have run out.
		select {
		case <-renewals:
		case <-ctx.Done():
			return Ending{}, ctx.Err()
		}
		return Ending{Outcome: store.OutcomeCompleted}, tx.Commit(ctx)
	}
	lease := 3 * time.Second
	e := b.engine("default", job, lease, 4)
	w := b.daemon(e)
	req := request(store.RunSweep, b.mirrors)
	req.Worker = w
	done := make(chan *Finished, 1)
	go func() {
		fin, err := e.Drive(b.ctx, req)
		if err != nil {
			t.Error(err)
		}
		done <- fin
	}()
	var first time.Time
	b.until("the judging to be renewed for longer than its lease", func() bool {
		var until *time.Time
		b.scalar(`SELECT (SELECT judge_until FROM sentry_runs LIMIT 1)`, &until)
		if until == nil {
			return false
		}
		if first.IsZero() {
			first = *until
		}
		return until.Sub(first) > lease
	})
	close(renewals)
	fin := <-done
	if fin.Outcome != store.OutcomeCompleted {
		t.Errorf("outcome %s %q", fin.Outcome, fin.Reason)
	}
	if _, judged := job.count(fin.Run.ID); judged != 1 {
		t.Errorf("judged %d times, want once", judged)
	}
}
