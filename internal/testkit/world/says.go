package world

import (
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/smtptest"
	"github.com/mirrorsentry/sentry/sentry/notify"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/store"
	"github.com/mirrorsentry/sentry/sentry/web"
)

// PageSays fails t unless the status page at path answers 200 with every
// one of want in its text (HTML entities unescaped).
func PageSays(t testing.TB, rp *report.Reporter, path string, want ...string) {
	t.Helper()
	page, err := web.New(web.Options{Reporter: rp})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	page.Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body := html.UnescapeString(rec.Body.String())
	if rec.Code != http.StatusOK {
		t.Fatalf("%s answered %d:\n%s", path, rec.Code, body)
	}
	for _, s := range want {
		if !strings.Contains(body, s) {
			t.Errorf("%s does not say %q:\n%s", path, s, body)
		}
	}
}

// DigestSays fails t unless the operators' daily digest, mailed through a
// real SMTP server, is one message with every one of want in its body.
func DigestSays(t testing.TB, st *store.Store, rp *report.Reporter, want ...string) {
	t.Helper()
	srv := smtptest.Start(t, smtptest.Options{})
	m := notify.NewMailer(notify.MailOptions{Store: st, Reporter: rp,
		SMTP:     notify.SMTP{Host: srv.Host, Port: srv.Port, From: "sentry@example.org", Timeout: 20 * time.Second},
		DigestTo: []string{"ops@example.org"}, Poll: 20 * time.Millisecond, Signature: "sentry/test (+ops@example.org)"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ms := srv.Messages(t)
	if len(ms) != 1 {
		t.Fatalf("%d digests mailed, want 1: %+v", len(ms), ms)
	}
	for _, s := range want {
		if !strings.Contains(ms[0].Body, s) {
			t.Errorf("the digest does not say %q:\n%s", s, ms[0].Body)
		}
	}
}
