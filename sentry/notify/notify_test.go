package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/hook"
	"github.com/mirrorsentry/sentry/sentry/notify"
	"github.com/mirrorsentry/sentry/sentry/observe"
)

func change(i int) observe.StateChangeEvent {
	return observe.StateChangeEvent{At: time.Unix(int64(1_700_000_000+i), 0), RunID: int64(i), MirrorID: 7,
		Mirror: "m", From: "up", To: "down", Reason: "test"}
}

func TestSignedInOrderRetried(t *testing.T) {
	secret := []byte("0123456789abcdef-notify")
	var mu sync.Mutex
	var runs []int64
	var attempts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if want := hook.Sign(secret, r.Header.Get(hook.HeaderTimestamp), body); r.Header.Get(hook.HeaderSignature) != want {
			t.Errorf("signature %q, want %q", r.Header.Get(hook.HeaderSignature), want)
		}
		if attempts.Add(1)%2 == 1 { // every event fails once
			http.Error(w, "try again", http.StatusBadGateway)
			return
		}
		var e notify.Event
		if err := json.Unmarshal(body, &e); err != nil {
			t.Error(err)
		}
		mu.Lock()
		runs = append(runs, e.StateChange.RunID)
		mu.Unlock()
	}))
	defer srv.Close()
	n := notify.New(notify.Options{URLs: []string{srv.URL}, Secret: secret, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond})
	for i := range 20 {
		n.StateChanged(change(i))
	}
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(runs) != 20 || attempts.Load() != 40 {
		t.Fatalf("delivered %d in %d attempts, want 20 in 40", len(runs), attempts.Load())
	}
	for i, r := range runs {
		if r != int64(i) {
			t.Fatalf("out of order: %v", runs)
		}
	}
}

func TestNeverBlocksAndRedactsTheURL(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // a webhook that hangs
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	var logs bytes.Buffer
	var dropped atomic.Int64
	n := notify.New(notify.Options{URLs: []string{srv.URL + "/hooks/SECRET-TOKEN"}, QueueSize: 10, Timeout: time.Minute,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Dropped: func() { dropped.Add(1) }})
	// 1,000 events against a hanging webhook: each call returns at once
	// (the test would hang otherwise); what does not fit is dropped.
	for i := range 1000 {
		n.GuardHeld(observe.GuardEvent{RunID: int64(i), RunKind: "sweep", Reason: "test"})
	}
	if d := dropped.Load(); d < 1000-10-1 {
		t.Errorf("%d dropped, want at least %d", d, 1000-10-1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := n.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "not delivered") {
		t.Errorf("Close: %v", err)
	}
	if strings.Contains(logs.String(), "SECRET-TOKEN") || (err != nil && strings.Contains(err.Error(), "SECRET-TOKEN")) {
		t.Errorf("the webhook URL's token leaked:\n%s\n%v", logs.String(), err)
	}
}

func TestPermanentRejectionIsNotRetried(t *testing.T) {
	var attempts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer srv.Close()
	var dropped atomic.Int64
	n := notify.New(notify.Options{URLs: []string{srv.URL}, RetryWaitMin: time.Millisecond, Dropped: func() { dropped.Add(1) }})
	n.StateChanged(change(1))
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if attempts.Load() != 1 || dropped.Load() != 1 {
		t.Errorf("%d attempts, %d dropped; want 1 and 1", attempts.Load(), dropped.Load())
	}
}
