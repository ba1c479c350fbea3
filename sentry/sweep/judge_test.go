package sweep_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// eventCounter counts what observers are told.
type eventCounter struct {
	mu      sync.Mutex
	changes []observe.StateChangeEvent
	ends    []observe.RunEvent
}

func (c *eventCounter) CheckDone(observe.CheckEvent) {}

func (c *eventCounter) GuardHeld(observe.GuardEvent) {}

func (c *eventCounter) StateChanged(e observe.StateChangeEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes = append(c.changes, e)
}

func (c *eventCounter) RunFinished(e observe.RunEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ends = append(c.ends, e)
}

// TestRejudgedSweepAnnouncesOnce: a sweep whose judgement failed after it
// had marked the mirrors (its end refused once by the database) is judged
// again; the mirrors' states are not counted twice, and neither a state
// change nor the run's end is announced twice.
func TestRejudgedSweepAnnouncesOnce(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	w.Static(t, "good")
	dead, _ := w.Static(t, "dead")
	w.Prime(t)
	world.Failing(dead).Store(true)
	d.Config.State.DownAfter = 1
	d.Config.Cluster.Poll = config.Duration(100 * time.Millisecond)
	counter := &eventCounter{}
	d.Observer = counter
	ctx := context.Background()
	// The first end of a sweep is refused: the judgement fails after
	// writing every mirror's marks and state.
	if _, err := w.Pool().Exec(ctx, `
		CREATE SEQUENCE refuse_once;
		CREATE FUNCTION refuse_first_end() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF OLD.outcome = 'running' AND NEW.outcome <> 'running' AND NEW.kind = 'sweep' AND nextval('refuse_once') = 1 THEN
				RAISE EXCEPTION 'the test refuses the first end of a sweep';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_first_end BEFORE UPDATE ON sentry_runs FOR EACH ROW EXECUTE FUNCTION refuse_first_end();`); err != nil {
		t.Fatal(err)
	}
	rep := w.Sweep(t, false)
	if rep.Outcome != store.OutcomeCompleted {
		t.Fatalf("outcome %s %q", rep.Outcome, rep.Reason)
	}
	var attempts int
	if err := w.Pool().QueryRow(ctx, `SELECT judge_attempts FROM sentry_runs WHERE id = $1`, rep.RunID).Scan(&attempts); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 {
		t.Fatalf("%d failed judgements, want 1 (the trigger did not refuse the end?)", attempts)
	}
	if s := world.SweepSums(t, rep, "dead"); s.State != store.StateDown {
		t.Errorf("dead: %+v, want down", s)
	}
	var streak, changes int
	if err := w.Pool().QueryRow(ctx, `SELECT fail_streak, (SELECT count(*) FROM sentry_state_changes)
		FROM sentry_mirror_state ms JOIN mirror_mirrors m ON m.id = ms.mirror_id WHERE m.name = 'dead'`).Scan(&streak, &changes); err != nil {
		t.Fatal(err)
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	if streak != 1 || changes != 1 || len(counter.changes) != 1 {
		t.Errorf("fail streak %d, %d state changes recorded, %d announced; want 1, 1, 1", streak, changes, len(counter.changes))
	}
	ends := 0
	for _, e := range counter.ends {
		if e.RunID == rep.RunID {
			ends++
		}
	}
	if ends != 1 {
		t.Errorf("the sweep's end announced %d times, want once", ends)
	}
}
