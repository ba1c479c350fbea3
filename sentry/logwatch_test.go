package sentry_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// signalHandler passes log records on and closes a channel the first time
// a record's message contains a watched phrase: tests wait on what sentry
// did, not on time.
type signalHandler struct {
	slog.Handler
	w *watches
}

type watches struct {
	mu    sync.Mutex
	ch    map[string]chan struct{}
	hooks map[string]func() // run once, synchronously, by the logging goroutine
}

// do makes the first record holding phrase run fn before it is logged:
// whatever logged it waits for fn.
func (w *watches) do(phrase string, fn func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hooks == nil {
		w.hooks = map[string]func(){}
	}
	w.hooks[phrase] = fn
}

func (w *watches) on(phrase string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = map[string]chan struct{}{}
	}
	if w.ch[phrase] == nil {
		w.ch[phrase] = make(chan struct{})
	}
	return w.ch[phrase]
}

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.w.mu.Lock()
	var hooks []func()
	for phrase, fn := range h.w.hooks {
		if strings.Contains(r.Message, phrase) {
			hooks = append(hooks, fn)
			delete(h.w.hooks, phrase)
		}
	}
	for phrase, ch := range h.w.ch {
		if strings.Contains(r.Message, phrase) {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
	}
	h.w.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
	return h.Handler.Handle(ctx, r)
}

func (h signalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return signalHandler{h.Handler.WithAttrs(as), h.w}
}

func (h signalHandler) WithGroup(name string) slog.Handler {
	return signalHandler{h.Handler.WithGroup(name), h.w}
}

// wait fails the test unless ch closes within a generous bound.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(90 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
