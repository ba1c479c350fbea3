package sentry_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/smtptest"
	"github.com/mirrorsentry/sentry/sentry/notify"
	"github.com/mirrorsentry/sentry/sentry/observe"
	"github.com/mirrorsentry/sentry/sentry/report"
)

// newTestMailer is a Mailer of one sentry, fast to retry.
func newTestMailer(t *testing.T, b *bundle, srv *smtptest.Server, digestTo []string, now func() time.Time) *notify.Mailer {
	t.Helper()
	return notify.NewMailer(notify.MailOptions{
		Store: b.st, Reporter: report.New(b.st.Pool(), now),
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
	d, b := setup(t)
	s, id := b.static(t, "flaky")
	b.static(t, "good1")
	b.static(t, "good2")
	if _, err := b.st.Pool().Exec(context.Background(), `INSERT INTO sentry_mirror_settings (mirror_id, contact) VALUES ($1, 'admin@flaky.example')`,
		id); err != nil {
		t.Fatal(err)
	}
	primeRelease(t, d)
	srv := smtptest.Start(t, smtptest.Options{FailFirst: 1})
	first := newTestMailer(t, b, srv, nil, nil)
	second := newTestMailer(t, b, srv, nil, nil) // another sentry on the database
	d.Observer = observe.All(d.Observer, first, second)
	failing(s).Store(true)
	sweepNow(t, d, false)
	sweepNow(t, d, false) // down
	ms := srv.Wait(t, 1, time.Minute)
	closeMailer(t, first)
	closeMailer(t, second)
	// A sentry restarted sends nothing again.
	closeMailer(t, newTestMailer(t, b, srv, nil, nil))
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
	if err := b.st.Pool().QueryRow(context.Background(), `SELECT attempts, last_error FROM sentry_notices WHERE kind = 'state'`).
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
	d, b := setup(t)
	s, _ := b.static(t, "broken")
	b.static(t, "fine1")
	b.static(t, "fine2")
	primeRelease(t, d)
	failing(s).Store(true)
	sweepNow(t, d, false)
	sweepNow(t, d, false)
	srv := smtptest.Start(t, smtptest.Options{})
	day := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	clock := func() time.Time { return day }
	ops := []string{"ops@example.org", "oncall@example.org"}
	closeMailer(t, newTestMailer(t, b, srv, ops, clock))
	closeMailer(t, newTestMailer(t, b, srv, ops, clock))
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
	closeMailer(t, newTestMailer(t, b, srv, ops, clock))
	if n := len(srv.Messages(t)); n != 2 {
		t.Errorf("%d digests after the next day's, want 2", n)
	}
}
