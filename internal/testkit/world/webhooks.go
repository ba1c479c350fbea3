package world

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/mirrorsentry/sentry/sentry/notify"
)

// Receiver is a webhook endpoint that records the events POSTed to it.
type Receiver struct {
	mu     sync.Mutex
	events []notify.Event
	fail   int // answer 503 to this many requests first
	*httptest.Server
}

// NewReceiver starts a Receiver until the test ends; it answers 503 to
// the first fail requests. A body that is not an event, or whose
// X-Sentry-Event header says another, fails the test.
func NewReceiver(t testing.TB, fail int) *Receiver {
	r := &Receiver{fail: fail}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.fail > 0 {
			r.fail--
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(req.Body)
		var e notify.Event
		if err := json.Unmarshal(body, &e); err != nil || req.Header.Get("X-Sentry-Event") != e.Event {
			t.Errorf("webhook body %q: %v", body, err)
		}
		r.events = append(r.events, e)
	}))
	t.Cleanup(r.Close)
	return r
}

// Got returns the events received so far, in order.
func (r *Receiver) Got() []notify.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Event(nil), r.events...)
}
