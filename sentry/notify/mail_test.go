package notify_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/factory"
	"github.com/mirrorsentry/sentry/internal/testkit/smtptest"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/notify"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/report"
)

// newTestMailer is a Mailer of one sentry, fast to retry.
func newTestMailer(t *testing.T, w *world.World, srv *smtptest.Server, digestTo []string, now func() time.Time) *notify.Mailer {
	t.Helper()
	return notify.NewMailer(notify.MailOptions{
		Store: w.Store, Reporter: report.New(w.Pool(), now),
		SMTP:      notify.SMTP{Host: srv.Host, Port: srv.Port, From: "sentry@example.org", Timeout: 20 * time.Second},
		PublicURL: "https://status.example.org", DigestTo: digestTo, Retries: 3,
		RetryWaitMin: 20 * time.Millisecond, RetryWaitMax: 50 * time.Millisecond, Poll: 20 * time.Millisecond,
		Secrets: []string{"hook-secret-value-1234"}, Signature: "sentry/test (+ops@example.org)", Now: now,
	})
}

func closeMailer(t *testing.T, m *notify.Mailer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Error(err)
	}
}

// TestMailOncePerStateChange: a mirror going down is mailed to its contact
// once, though the relay refuses the first attempt (retried with
// backoff), though two sentries mail, and though they restart; the mail
// says why and holds no secret, whatever the reason holds.
func TestMailOncePerStateChange(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	d := w.Deps
	s, id := w.Static(t, "flaky")
	w.Static(t, "good1")
	w.Static(t, "good2")
	factory.MirrorSettings(context.Background(), t, w.Pool(), &factory.MirrorSettingsOpts{MirrorID: id, Contact: "admin@flaky.example"})
	w.Prime(t)
	srv := smtptest.Start(t, smtptest.Options{FailFirst: 1})
	first := newTestMailer(t, w, srv, nil, nil)
	second := newTestMailer(t, w, srv, nil, nil) // another sentry on the database
	d.Observer = observe.All(d.Observer, first, second)
	world.Failing(s).Store(true)
	w.Sweep(t, false)
	w.Sweep(t, false) // down
	ms := srv.Wait(t, 1, time.Minute)
	closeMailer(t, first)
	closeMailer(t, second)
	// A sentry restarted sends nothing again.
	closeMailer(t, newTestMailer(t, w, srv, nil, nil))
	ms = srv.Messages(t)
	if len(ms) != 1 {
		t.Fatalf("%d mails, want 1", len(ms))
	}
	m := ms[0]
	if m.EnvelopeTo[0] != "admin@flaky.example" || m.Header.Get("Subject") != "[sentry] mirror flaky is down" ||
		!strings.Contains(m.Body, "Why: down after 2 failed sweeps") || !strings.Contains(m.Body, "http_status") ||
		!strings.Contains(m.Body, "https://status.example.org/mirrors/flaky") || m.Header.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("mail to %v %q:\n%s", m.EnvelopeTo, m.Header.Get("Subject"), m.Body)
	}
	var attempts int
	var lastErr string
	if err := w.Pool().QueryRow(context.Background(), `SELECT attempts, last_error FROM sentry_notices WHERE kind = 'state'`).
		Scan(&attempts, &lastErr); err != nil {
		t.Fatal(err)
	}
	if attempts != 2 || lastErr != "" {
		t.Errorf("notice: %d attempts (want 2: the relay refused the first), last error %q", attempts, lastErr)
	}
}

// TestMailDigestOncePerDay: operators get one digest a day, naming the
// mirrors that are not simply up, whichever sentry sends it.
func TestMailDigestOncePerDay(t *testing.T) {
	t.Parallel()
	w := world.New(t, nil)
	s, _ := w.Static(t, "broken")
	w.Static(t, "fine1")
	w.Static(t, "fine2")
	w.Prime(t)
	world.Failing(s).Store(true)
	w.Sweep(t, false)
	w.Sweep(t, false)
	srv := smtptest.Start(t, smtptest.Options{})
	day := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	clock := func() time.Time { return day }
	ops := []string{"ops@example.org", "oncall@example.org"}
	closeMailer(t, newTestMailer(t, w, srv, ops, clock))
	closeMailer(t, newTestMailer(t, w, srv, ops, clock))
	ms := srv.Messages(t)
	if len(ms) != 1 {
		t.Fatalf("%d digests on one day, want 1", len(ms))
	}
	m := ms[0]
	if len(m.EnvelopeTo) != 2 || !strings.Contains(m.Header.Get("Subject"), "2026-11-25") ||
		!strings.Contains(m.Body, "broken: down: down after 2 failed sweeps") || strings.Contains(m.Body, "fine1") {
		t.Errorf("digest to %v %q:\n%s", m.EnvelopeTo, m.Header.Get("Subject"), m.Body)
	}
	day = day.Add(24 * time.Hour)
	closeMailer(t, newTestMailer(t, w, srv, ops, clock))
	if n := len(srv.Messages(t)); n != 2 {
		t.Errorf("%d digests after the next day's, want 2", n)
	}
}
