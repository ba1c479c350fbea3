package notify_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/notify"
	"github.com/mirrorsentry/sentry/sentry/observe"
)

func TestWebhookOnePostPerStateChange(t *testing.T) {
	t.Parallel()
	recv := world.NewReceiver(t, 1) // the first POST fails and is retried
	var n *notify.Notifier
	w := world.NewReportWorld(t, func(d *sentry.Deps) observe.Observer {
		n = notify.New(notify.Options{URLs: []string{recv.URL + "/hook?token=x"}, RetryWaitMin: time.Millisecond,
			RetryWaitMax: 5 * time.Millisecond, Vantage: "test"})
		return n
	})
	// flaky went down in the fixture's second sweep; bring it back.
	w.Flaky.Store(false)
	w.Sweep(t, false)
	w.Sweep(t, false)
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := recv.Got()
	var changes []struct{ From, To string }
	rows, err := w.Pool().Query(context.Background(), `SELECT from_state, to_state FROM sentry_state_changes ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c struct{ From, To string }
		if err := rows.Scan(&c.From, &c.To); err != nil {
			t.Fatal(err)
		}
		changes = append(changes, c)
	}
	rows.Close()
	if len(changes) != 2 || len(got) != len(changes) {
		t.Fatalf("%d POSTs for %d recorded state changes: %+v", len(got), len(changes), got)
	}
	for i, e := range got {
		sc := e.StateChange
		if e.Event != notify.EventStateChanged || sc == nil || sc.Mirror != "flaky" || sc.From != changes[i].From ||
			sc.To != changes[i].To || sc.Reason == "" || e.Vantage != "test" || e.ID == "" {
			t.Errorf("POST %d: %+v %+v, recorded %+v", i, e, sc, changes[i])
		}
	}
}

func TestWebhookOnGuard(t *testing.T) {
	t.Parallel()
	recv := world.NewReceiver(t, 0)
	var n *notify.Notifier
	w := world.NewReportWorld(t, func(d *sentry.Deps) observe.Observer {
		n = notify.New(notify.Options{URLs: []string{recv.URL}, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond})
		return n
	})
	for _, s := range w.Servers {
		world.Failing(s).Store(true)
	}
	rep := w.Sweep(t, false)
	if rep.Outcome != "guarded" {
		t.Fatalf("outcome %s", rep.Outcome)
	}
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var guards []notify.Event
	for _, e := range recv.Got() {
		if e.Event == notify.EventGuard {
			guards = append(guards, e)
		}
	}
	if len(guards) != 1 || guards[0].Guard.RunID != rep.RunID || !strings.Contains(guards[0].Guard.Reason, "sentry's own network") {
		t.Errorf("guard POSTs: %+v", guards)
	}
}
