package engine

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/store"
)

// Adding a job kind needs no change to the engine: the tests here register
// a third kind, an "audit", beside the prime and the sweeps, with
// properties of its own — a priority between theirs, yielding, and a group
// of its own — and show the engine honours them.

const audit = "audit"

// auditKinds are the fake prime and sweeps, and the audit.
func auditKinds(job Job) map[string]Kind {
	return fakeKinds(job, map[string]Kind{audit: {Job: job, Priority: 5, Yield: true, Group: "audit"}})
}

// TestThirdKindIsDriven: a run of a kind registered only in this test is
// planned, its rows claimed and worked (once each, by a command and two
// daemons), and it is judged once.
func TestThirdKindIsDriven(t *testing.T) {
	b := setup(t, 12)
	job := newFakeJob()
	b.daemon(b.engineOf("default", auditKinds(job), 0, 2))
	b.daemon(b.engineOf("default", auditKinds(job), 0, 2))
	fin, err := b.engineOf("default", auditKinds(job), 0, 2).Drive(b.ctx, request(audit, b.mirrors))
	if err != nil {
		t.Fatal(err)
	}
	if fin.Run.Kind != audit || fin.Outcome != store.OutcomeCompleted {
		t.Errorf("finished %s %s %q, want an audit, completed", fin.Run.Kind, fin.Outcome, fin.Reason)
	}
	if worked, judged := job.count(fin.Run.ID); worked != len(b.mirrors) || judged != 1 {
		t.Errorf("worked %d rows, judged %d times; want %d and 1", worked, judged, len(b.mirrors))
	}
	var priority int
	var yields bool
	var group string
	b.scalar(`SELECT priority FROM sentry_runs WHERE id = $1`, &priority, fin.Run.ID)
	b.scalar(`SELECT yields FROM sentry_runs WHERE id = $1`, &yields, fin.Run.ID)
	b.scalar(`SELECT exclusive_group FROM sentry_runs WHERE id = $1`, &group, fin.Run.ID)
	if priority != 5 || !yields || group != "audit" {
		t.Errorf("run recorded with priority %d, yields %v, group %q; want what the kind registered: 5, true, audit",
			priority, yields, group)
	}
}

// TestThirdKindsPriority: of a sweep, an audit and a prime, recorded in
// that order over different mirrors, the prime's rows are claimed first,
// then the audit's, then the sweep's: in the order of their priorities,
// not of the runs.
func TestThirdKindsPriority(t *testing.T) {
	b := setup(t, 6)
	e := b.engineOf("default", auditKinds(newFakeJob()), 0, 10)
	creator := b.worker(e, RoleDaemon)
	sweepRun, _ := b.start(creator, store.RunSweep, false, 0, b.mirrors[0:2]...)
	auditRun, _ := b.start(creator, audit, false, 0, b.mirrors[2:4]...)
	primeRun, _ := b.start(creator, store.RunPrime, false, 0, b.mirrors[4:6]...)
	w := b.worker(e, RoleDaemon)
	for _, want := range []WorkKey{{primeRun.ID, b.mirrors[4]}, {auditRun.ID, b.mirrors[2]}, {sweepRun.ID, b.mirrors[0]}} {
		got := b.claim(w, 0, 1)
		if k := keysOf(got); !slices.Equal(k, []WorkKey{want}) {
			t.Fatalf("claimed %v, want %v", k, want)
		}
		// The rest of the run, before a lower one.
		got = b.claim(w, 0, 1)
		if k := keysOf(got); len(k) != 1 || k[0].RunID != want.RunID {
			t.Fatalf("claimed %v, want the rest of run %d", k, want.RunID)
		}
	}
}

// TestThirdKindYields: of a sweep, an audit and a prime of the same
// mirrors, a mirror's audit row is not claimed while its prime row waits,
// nor its sweep row while its audit row waits — even by a claimer that may
// claim only the lower run's rows (a command's) — and each run is claimed
// once the higher ones are done.
func TestThirdKindYields(t *testing.T) {
	b := setup(t, 3)
	e := b.engineOf("default", auditKinds(newFakeJob()), 0, 10)
	creator := b.worker(e, RoleDaemon)
	sweepRun, _ := b.start(creator, store.RunSweep, false, 0, b.mirrors...)
	auditRun, _ := b.start(creator, audit, false, 0, b.mirrors...)
	primeRun, _ := b.start(creator, store.RunPrime, false, 0, b.mirrors...)
	w := b.worker(e, RoleDaemon)
	runs := []Run{primeRun, auditRun, sweepRun}
	for i, want := range runs {
		for _, lower := range runs[i+1:] {
			if got := b.claim(w, lower.ID, 3); len(got) != 0 {
				t.Fatalf("while the %s's rows wait, a claim of the %s's alone got %v", want.Kind, lower.Kind, keysOf(got))
			}
		}
		got := b.claim(w, want.ID, 3)
		if k := keysOf(got); !slices.Equal(k, keys(want.ID, b.mirrors...)) {
			t.Fatalf("claimed %v, want the %s's rows %v", k, want.Kind, keys(want.ID, b.mirrors...))
		}
		for _, r := range got {
			if ok, err := e.complete(b.ctx, r.fence, w.id, Result{Files: 1}); !ok || err != nil {
				t.Fatalf("complete %v: %v %v", r.MirrorID, ok, err)
			}
			delete(w.held.rows, WorkKey{r.Run.ID, r.MirrorID})
		}
	}
}

// TestThirdKindsGroup: scheduled runs of the audit's group go one at a
// time, as the kind declared (a GroupBusyError naming the group and the
// running audit), and a group does not hold back the runs of another: a
// scheduled sweep starts beside a scheduled audit.
func TestThirdKindsGroup(t *testing.T) {
	b := setup(t, 1)
	e := b.engineOf("default", auditKinds(newFakeJob()), 0, 4)
	w := b.worker(e, RoleDaemon)
	slot := time.Date(2030, 1, 1, 3, 0, 0, 0, time.UTC)
	first, _, err := e.begin(b.ctx, Request{Kind: audit, Slot: slot}, w.id)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = e.begin(b.ctx, Request{Kind: audit, Slot: slot.Add(time.Hour)}, w.id)
	var busy GroupBusyError
	if !errors.As(err, &busy) || !errors.Is(err, ErrGroupBusy) || busy.Group != "audit" || busy.RunID != first.ID {
		t.Fatalf("a second scheduled audit: %v, want a GroupBusyError naming group audit and run %d", err, first.ID)
	}
	if _, _, err := e.begin(b.ctx, Request{Kind: store.RunSweep, Slot: slot}, w.id); err != nil {
		t.Errorf("a scheduled sweep beside a scheduled audit: %v", err)
	}
	if _, _, err := e.begin(b.ctx, Request{Kind: audit}, w.id); err != nil {
		t.Errorf("an audit that is not scheduled: %v", err)
	}
}

// TestUnknownKindLeftToOthers: a sentry that does not register a kind
// neither claims the rows of its runs nor judges them; one that does,
// does both.
func TestUnknownKindLeftToOthers(t *testing.T) {
	b := setup(t, 2)
	job := newFakeJob()
	knows := b.engineOf("default", auditKinds(job), 0, 4)
	older := b.engine("default", job, 0, 4)
	run, _ := b.start(b.worker(knows, RoleDaemon), audit, false, 0, b.mirrors...)
	o := b.worker(older, RoleDaemon)
	if got := b.claim(o, 0, 2); len(got) != 0 {
		t.Errorf("a sentry without the kind claimed %v", keysOf(got))
	}
	k := b.worker(knows, RoleDaemon)
	got := b.claim(k, 0, 2)
	if k := keysOf(got); !slices.Equal(k, keys(run.ID, b.mirrors...)) {
		t.Fatalf("the sentry with the kind claimed %v", k)
	}
	for _, r := range got {
		if ok, err := knows.complete(b.ctx, r.fence, k.id, Result{Files: 1}); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	o.only.Store(0)
	if jc, err := older.claimJudging(b.ctx, o); err != nil || len(jc) != 0 {
		t.Errorf("a sentry without the kind claimed its judging: %v %v", jc, err)
	}
	if jc, err := knows.claimJudging(b.ctx, k); err != nil || len(jc) != 1 {
		t.Errorf("the sentry with the kind claimed judgings %v (%v), want the run's", jc, err)
	}
}

// TestRunsOfOlderSentries: a run recorded by a sentry older than migration
// 0013, which knows nothing of the kinds' properties, gets those its
// engine hard-coded for its kind: a prime's rows come first, a sweep's
// yield, and scheduled sweeps go one at a time with a newer sentry's.
func TestRunsOfOlderSentries(t *testing.T) {
	b := setup(t, 1)
	e := b.engine("default", newFakeJob(), 0, 4)
	w := b.worker(e, RoleDaemon)
	var primeID, sweepID int64
	b.scalar(`INSERT INTO sentry_runs (kind, vantage, host, pid, instance, params, key, slot, ready)
		VALUES ('prime', 'x', 'h', 1, $1, '{}', 'prime 9', NULL, false) RETURNING id`, &primeID, w.id)
	b.scalar(`INSERT INTO sentry_runs (kind, vantage, host, pid, instance, params, key, slot, ready)
		VALUES ('deep_sweep', 'x', 'h', 1, $1, '{}', NULL, '2030-01-01T00:00:00Z', false) RETURNING id`, &sweepID, w.id)
	for _, c := range []struct {
		id       int64
		priority int
		yields   bool
		group    *string
	}{{primeID, 10, false, nil}, {sweepID, 0, true, new("sweep")}} {
		var priority int
		var yields bool
		var group *string
		b.scalar(`SELECT priority FROM sentry_runs WHERE id = $1`, &priority, c.id)
		b.scalar(`SELECT yields FROM sentry_runs WHERE id = $1`, &yields, c.id)
		b.scalar(`SELECT exclusive_group FROM sentry_runs WHERE id = $1`, &group, c.id)
		if priority != c.priority || yields != c.yields || (group == nil) != (c.group == nil) || (group != nil && *group != *c.group) {
			t.Errorf("run %d of an older sentry: priority %d, yields %v, group %v; want %d, %v, %v",
				c.id, priority, yields, group, c.priority, c.yields, c.group)
		}
	}
	_, _, err := e.begin(b.ctx, Request{Kind: store.RunSweep, Slot: time.Date(2030, 1, 1, 1, 0, 0, 0, time.UTC)}, w.id)
	if busy := (GroupBusyError{}); !errors.As(err, &busy) || busy.RunID != sweepID {
		t.Errorf("a scheduled sweep beside an older sentry's: %v, want busy with run %d", err, sweepID)
	}
}

// TestOptionsValidate: a registration the engine cannot honour is refused,
// naming the kind.
func TestOptionsValidate(t *testing.T) {
	job := newFakeJob()
	busy := errors.New("busy")
	for _, c := range []struct {
		name string
		jobs map[string]Kind
		want string // "" for valid
	}{
		{"none", nil, "engine: no jobs"},
		{"a job", map[string]Kind{"a": {Job: job}}, ""},
		{"every property", map[string]Kind{"a": {Job: job, Priority: 3, Yield: true, Group: "g", Busy: busy}}, ""},
		{"no kind", map[string]Kind{"": {Job: job}}, "engine: a job registered without a kind"},
		{"no job", map[string]Kind{"a": {Priority: 1}}, `engine: kind "a" registered without its job`},
		{"busy without group", map[string]Kind{"a": {Job: job, Busy: busy}}, `engine: kind "a" has a busy error but no group`},
	} {
		err := Options{Jobs: c.jobs}.WithDefaults().validate()
		if got := fmt.Sprint(err); (c.want == "" && err != nil) || (c.want != "" && got != c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestGroupBusyError: a busy group reads as the kind's own error when it
// has one (what a sweep's callers have always read), and matches both
// that error and ErrGroupBusy.
func TestGroupBusyError(t *testing.T) {
	own := errors.New("another sweep is still running")
	for _, c := range []struct {
		err     GroupBusyError
		text    string
		matches []error
	}{
		{GroupBusyError{Group: "sweep", RunID: 7, Busy: own}, "another sweep is still running (run 7)", []error{ErrGroupBusy, own}},
		{GroupBusyError{Group: "audit", RunID: 8}, `a scheduled run of group "audit" is still running (run 8)`, []error{ErrGroupBusy}},
	} {
		err := fmt.Errorf("wrapped: %w", c.err)
		if got := c.err.Error(); got != c.text {
			t.Errorf("%+v reads %q, want %q", c.err, got, c.text)
		}
		for _, target := range c.matches {
			if !errors.Is(err, target) {
				t.Errorf("%q does not match %v", err, target)
			}
		}
	}
}
