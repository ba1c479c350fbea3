package main

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStatusPageFloodKeepsHeartbeats: a flood of requests to the status
// page, the API and /metrics, each held by a lock on the mirrors (as a
// slow database would hold them), takes at most http.db_conns (2)
// connections, of a pool of their own: the daemon's lease heartbeat goes
// on renewing meanwhile (with one shared pool, the requests took every
// connection and the heartbeat waited behind them), and the requests past
// sixteen at once are answered 503 at once.
func TestStatusPageFloodKeepsHeartbeats(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "cluster:\n  lease: 3s\n  poll: 1s\n")
	d := w.startDaemon(t, "daemon")
	deadline := time.Now().Add(90 * time.Second)
	for started := false; !started; {
		select {
		case l := <-d.lines:
			started = strings.Contains(l, "sentry run started")
		case <-d.exited:
			t.Fatalf("sentry run exited: %v\n%s", d.err, d.logText())
		case <-time.After(time.Until(deadline)):
			t.Fatalf("the daemon did not start:\n%s", d.logText())
		}
	}
	addr := d.listenAddr(t)

	// The mirrors locked: every read of the page waits, holding its
	// connection.
	ctx := context.Background()
	lock := w.Connect(t)
	defer lock.Close(ctx)
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE mirror_mirrors IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	var wg sync.WaitGroup
	codes := make(chan int, 60)
	for i := range 60 {
		path := []string{"/api/mirrors", "/", "/metrics"}[i%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get("http://" + addr + path)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	watch := w.Connect(t)
	defer watch.Close(ctx)
	// Wait for the page's pool to be held by the lock.
	var since time.Time
	for waiting := 0; waiting == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no request of the page ever waited on the lock")
		}
		if err := watch.QueryRow(ctx, `SELECT count(*), now() FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock'`).Scan(&waiting, &since); err != nil {
			t.Fatal(err)
		}
	}
	// The heartbeat renews (every second: a third of the lease) while the
	// page's connections wait.
	renewed := false
	for !renewed {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's heartbeat stopped while the page was flooded:\n%s", d.logText())
		}
		var webConns, waiting int
		if err := watch.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'sentry web'),
				(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'),
				(SELECT count(*) > 0 FROM sentry_instances WHERE role = 'daemon' AND last_seen > $1::timestamptz + interval '1 second')`,
			since).Scan(&webConns, &waiting, &renewed); err != nil {
			t.Fatal(err)
		}
		if webConns > 2 {
			t.Fatalf("the page holds %d connections, over http.db_conns", webConns)
		}
		if waiting == 0 {
			t.Fatal("the page's requests stopped waiting on the lock: the test proves nothing")
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(codes)
	n := map[int]int{}
	for c := range codes {
		n[c]++
	}
	t.Logf("answers: %v", n)
	if n[http.StatusServiceUnavailable] == 0 || n[http.StatusOK] == 0 || n[http.StatusOK]+n[http.StatusServiceUnavailable] != 60 {
		t.Errorf("answers %v: want some 200 (once the lock went) and some 503 (past sixteen at once), nothing else", n)
	}
	if err := d.stop(t); err != nil {
		t.Errorf("sentry run: %v", err)
	}
}
