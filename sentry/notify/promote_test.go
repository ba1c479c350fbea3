package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/sentry/notify"
	"github.com/mirrorsentry/sentry/sentry/observe"
)

// TestWebhookOnAliasPromoted: an alias moved is the event alias_promoted,
// told through any fan-out of observers, with its id and its move.
func TestWebhookOnAliasPromoted(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []notify.Event
	var headers []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var e notify.Event
		if err := json.Unmarshal(body, &e); err != nil {
			t.Error(err)
		}
		mu.Lock()
		got, headers = append(got, e), append(headers, r.Header.Get("X-Sentry-Event"))
		mu.Unlock()
	}))
	defer srv.Close()
	n := notify.New(notify.Options{URLs: []string{srv.URL}, Vantage: "eu"})
	up := 0.83
	at := time.Date(2026, 12, 1, 7, 15, 2, 0, time.UTC)
	observe.AliasPromoted(observe.All(observe.Nop, n), observe.AliasEvent{At: at, Alias: "firefox-latest", From: "Firefox-1.5",
		To: "Firefox-2.0", Release: "2.0", By: "prime", RunID: 901, MinUptake: &up, Reason: "every location at 80.0%"})
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || headers[0] != notify.EventAliasPromoted || got[0].Event != "alias_promoted" || got[0].Vantage != "eu" ||
		got[0].ID != "alias-firefox-latest-Firefox-2.0-1796109302000" || got[0].Alias == nil || got[0].Alias.To != "Firefox-2.0" ||
		got[0].Alias.From != "Firefox-1.5" || *got[0].Alias.MinUptake != 0.83 || got[0].Alias.RunID != 901 {
		t.Errorf("events %+v (headers %v)", got, headers)
	}
}
