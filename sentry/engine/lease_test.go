package engine

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/checks"
	"github.com/mirrorsentry/sentry/sentry/decide"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// TestFencedAfterTakeover: once a row was taken over, nothing its former
// holder writes for it counts: its checks are left out, its marks refused,
// its completion and give-back change nothing; the new holder's do count.
func TestFencedAfterTakeover(t *testing.T) {
	b := setup(t, 1)
	e := b.engine("default", newFakeJob(), 0, 4)
	a, c := b.worker(e, RoleDaemon), b.worker(e, RoleDaemon)
	run, rows := b.start(a, store.RunPrime, false, 1, b.mirrors...)
	old := rows[0]
	b.exec(`UPDATE sentry_work SET lease_until = now() - interval '1s' WHERE run_id = $1`, run.ID)
	taken := b.claim(c, run.ID, 1)
	if len(taken) != 1 {
		t.Fatal("no takeover")
	}
	check := store.Check{CheckedAt: time.Now(), Vantage: "default", Method: "HEAD", Result: "ok", Bytes: -1, Size: -1}
	if err := old.Record(b.ctx, check); err != nil {
		t.Fatal(err)
	}
	if err := a.rec.Sync(b.ctx); err != nil {
		t.Fatal(err)
	}
	if s := a.rec.Stats(); s.Fenced != 1 || s.Written != 0 {
		t.Errorf("the former holder's check: %+v, want fenced", s)
	}
	mark := store.MirrorMarks{MirrorID: old.MirrorID, LogDate: run.StartedAt, Reason: "r",
		Locations: []decide.LocationMark{}, Fence: old.Fence()}
	if err := b.st.MarkMirror(b.ctx, mark); !errors.Is(err, store.ErrFenced) {
		t.Errorf("the former holder's marks: %v, want ErrFenced", err)
	}
	if err := e.giveBack(b.ctx, old.fence, a.id); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.complete(b.ctx, old.fence, a.id, Result{Files: "old"}); ok || err != nil {
		t.Errorf("the former holder completed the row: %v %v", ok, err)
	}
	var holder string
	b.scalar(`SELECT claimed_by FROM sentry_work WHERE run_id = $1`, &holder, run.ID)
	if holder != c.id {
		t.Errorf("row held by %s after the former holder's give-back, want %s", holder, c.id)
	}
	if err := taken[0].Record(b.ctx, check); err != nil {
		t.Fatal(err)
	}
	if err := c.rec.Sync(b.ctx); err != nil {
		t.Fatal(err)
	}
	mark.Fence = taken[0].Fence()
	if err := b.st.MarkMirror(b.ctx, mark); err != nil {
		t.Errorf("the holder's marks: %v", err)
	}
	if ok, err := e.complete(b.ctx, taken[0].fence, c.id, Result{Files: "new"}); !ok || err != nil {
		t.Errorf("the holder's completion: %v %v", ok, err)
	}
	var files string
	var checks int
	b.scalar(`SELECT result::text FROM sentry_work WHERE run_id = $1`, &files, run.ID)
	b.scalar(`SELECT count(*) FROM sentry_checks WHERE run_id = $1`, &checks, run.ID)
	if files != `"new"` || checks != 1 {
		t.Errorf("row result %s with %d checks; want the holder's, 1 check", files, checks)
	}
}

// TestHeartbeat: a heartbeat renews the rows the worker works on (by
// token), cancels the work on a row another worker took over, and gives
// back a row the database says it holds but it does not work on (a
// give-back that failed during an outage) once it saw it so on two beats
// (a claim on its way is not given back).
func TestHeartbeat(t *testing.T) {
	b := setup(t, 3)
	e := b.engine("default", newFakeJob(), 0, 10)
	a, c := b.worker(e, RoleDaemon), b.worker(e, RoleDaemon)
	run, rows := b.start(a, store.RunPrime, false, 3, b.mirrors...)
	var kept, orphan, lost *Row
	for _, r := range rows {
		switch r.MirrorID {
		case b.mirrors[0]:
			kept = r
		case b.mirrors[1]:
			orphan = r
		default:
			lost = r
		}
	}
	// The orphan is not worked on here; the lost row was taken over.
	delete(a.held.rows, WorkKey{run.ID, orphan.MirrorID})
	ctx, _ := a.rowContext(lost)
	a.rowContext(kept)
	b.exec(`UPDATE sentry_work SET lease_until = now() - interval '1s' WHERE run_id = $1 AND mirror_id = $2`, run.ID, lost.MirrorID)
	if got := b.claim(c, run.ID, 1); len(got) != 1 || got[0].MirrorID != lost.MirrorID {
		t.Fatalf("takeover claimed %v", keysOf(got))
	}
	b.exec(`UPDATE sentry_work SET lease_until = now() + interval '1s' WHERE run_id = $1 AND mirror_id IN ($2, $3)`,
		run.ID, kept.MirrorID, orphan.MirrorID)
	before := kept.renewed.Load()
	a.beat(b.ctx)
	var left float64
	b.scalar(`SELECT extract(epoch FROM lease_until - now()) FROM sentry_work WHERE run_id = $1 AND mirror_id = $2`, &left,
		run.ID, kept.MirrorID)
	if left < 30 || kept.renewed.Load() <= before {
		t.Errorf("the row worked on: %.0fs of lease left, renewed %v → %v; want renewed for a lease", left, before, kept.renewed.Load())
	}
	if ctx.Err() == nil {
		t.Error("the work on the row taken over was not cancelled")
	}
	var orphanHolder *string
	var orphanLeft float64
	b.scalar(`SELECT claimed_by FROM sentry_work WHERE run_id = $1 AND mirror_id = $2`, &orphanHolder, run.ID, orphan.MirrorID)
	b.scalar(`SELECT extract(epoch FROM lease_until - now()) FROM sentry_work WHERE run_id = $1 AND mirror_id = $2`, &orphanLeft,
		run.ID, orphan.MirrorID)
	if orphanHolder == nil || *orphanHolder != a.id || orphanLeft > 2 {
		t.Errorf("after one beat the row not worked on is held by %v, %.0fs left; want still a's, not renewed", orphanHolder, orphanLeft)
	}
	a.beat(b.ctx)
	b.scalar(`SELECT claimed_by FROM sentry_work WHERE run_id = $1 AND mirror_id = $2`, &orphanHolder, run.ID, orphan.MirrorID)
	if orphanHolder != nil {
		t.Errorf("after two beats the row not worked on is still held by %s", *orphanHolder)
	}
}

// TestGuardRefusesRequestsOfALapsedRow: a request made for a row whose
// lease may have lapsed is not sent, even before anything cancelled the
// row's context; while the lease is fresh it is.
func TestGuardRefusesRequestsOfALapsedRow(t *testing.T) {
	b := setup(t, 1)
	e := b.engine("default", newFakeJob(), 0, 4)
	w := b.worker(e, RoleDaemon)
	var got atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { got.Add(1) }))
	defer srv.Close()
	client, err := checks.NewClient(checks.ClientOptions{UserAgent: "sentry-test", Retries: checks.NoRetries,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r := &Row{lease: time.Minute}
	r.renewed.Store(mono() - int64(time.Hour))
	ctx, cancel := w.rowContext(r)
	defer cancel()
	res := checks.Head(ctx, client, checks.Target{URL: srv.URL + "/f", Size: -1})
	if res.Kind != checks.KindInternal || !errors.Is(res.Err, checks.ErrGuarded) || got.Load() != 0 {
		t.Errorf("lapsed row: %s %v, %d requests sent; want internal, guarded, none", res.Kind, res.Err, got.Load())
	}
	if ctx.Err() != nil {
		t.Error("the guard cancelled the context (it must refuse, and leave cancelling to the watchdog)")
	}
	r.renewed.Store(mono())
	if res := checks.Head(ctx, client, checks.Target{URL: srv.URL + "/f", Size: -1}); res.Kind != checks.KindOK || got.Load() != 1 {
		t.Errorf("fresh row: %s, %d requests; want ok, 1", res.Kind, got.Load())
	}
}

// TestSelfFencing: a worker whose heartbeats fail stops its own work on a
// row before the row's lease runs out in the database (so before anyone
// could take it over); the row is then taken over by another worker.
func TestSelfFencing(t *testing.T) {
	b := setup(t, 1)
	job := newFakeJob()
	stopped := make(chan bool, 1) // whether the database lease was still live when the work stopped
	var once atomic.Bool
	job.work = func(ctx context.Context, row *Row) (Result, bool) {
		if !once.CompareAndSwap(false, true) {
			return Result{Files: "second"}, true // the takeover
		}
		<-ctx.Done()
		var live bool
		err := b.st.Pool().QueryRow(context.Background(),
			`SELECT lease_until > now() FROM sentry_work WHERE run_id = $1 AND mirror_id = $2`, row.Run.ID, row.MirrorID).Scan(&live)
		stopped <- err == nil && live
		return Result{}, false
	}
	lease := 3 * time.Second
	e := b.engine("default", job, lease, 4)
	w := b.daemon(e)
	// Heartbeats fail: the instance's row is locked by another
	// transaction, so every heartbeat times out.
	tx, err := b.st.Pool().Begin(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(b.ctx)
	if _, err := tx.Exec(b.ctx, `SET LOCAL idle_in_transaction_session_timeout = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(b.ctx, `SELECT 1 FROM sentry_instances WHERE id = $1 FOR UPDATE`, w.id); err != nil {
		t.Fatal(err)
	}
	req := request(store.RunPrime, b.mirrors)
	req.Worker = w
	done := make(chan *Finished, 1)
	go func() {
		fin, err := e.Drive(b.ctx, req)
		if err != nil {
			t.Error(err)
		}
		done <- fin
	}()
	select {
	case live := <-stopped:
		if !live {
			t.Error("the work stopped only after its lease had run out in the database")
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the work was never stopped")
	}
	// Another worker takes the row over once the lease ran out; the
	// heartbeats of the first can succeed again.
	b.daemon(b.engine("default", job, lease, 4))
	if err := tx.Rollback(b.ctx); err != nil {
		t.Fatal(err)
	}
	fin := <-done
	if fin.Outcome != store.OutcomeCompleted || string(fin.Rows[0].Files) != `"second"` {
		t.Errorf("finished %+v, rows %s", fin, fin.Rows[0].Files)
	}
}
