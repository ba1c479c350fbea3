package notify_test

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/smtptest"
	"github.com/mirrorsentry/sentry/internal/testkit/testca"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry/notify"
	"github.com/mirrorsentry/sentry/sentry/report"
)

// TestMailOverImplicitTLS: a real relay speaking TLS from the first byte
// (aiosmtpd on a TLS socket, as on port 465, with AUTH) gets the digest
// over TLS, authenticated, its certificate verified against the CA
// given; a relay whose certificate sentry does not trust gets nothing —
// neither the mail nor the password — and the notice says why.
func TestMailOverImplicitTLS(t *testing.T) {
	t.Parallel()
	ca := testca.New(t, "smtps test CA")
	now := time.Now()
	cert, key := ca.Issue(t, []string{"127.0.0.1"}, now.Add(-time.Hour), now.Add(24*time.Hour)).Write(t, t.TempDir(), "smtps")
	const password = "relay-password-4711"
	srv := smtptest.Start(t, smtptest.Options{CertFile: cert, KeyFile: key, ImplicitTLS: true, User: "sentry", Password: password})

	w := world.New(t, nil)
	s, _ := w.Static(t, "broken")
	w.Static(t, "fine1")
	w.Static(t, "fine2")
	w.Prime(t)
	world.Failing(s).Store(true)
	w.Sweep(t, false)
	w.Sweep(t, false)

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.PEM) {
		t.Fatal("the test CA's PEM holds no certificate")
	}
	day := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	clock := func() time.Time { return day }
	mailer := func(roots *x509.CertPool) *notify.Mailer {
		return notify.NewMailer(notify.MailOptions{
			Store: w.Store, Reporter: report.New(w.Pool(), clock),
			SMTP: notify.SMTP{Host: srv.Host, Port: srv.Port, ImplicitTLS: true, RootCAs: roots, User: "sentry", Password: password,
				From: "sentry@example.org", Timeout: 20 * time.Second},
			DigestTo: []string{"ops@example.org"}, Retries: 1,
			RetryWaitMin: 20 * time.Millisecond, RetryWaitMax: 50 * time.Millisecond, Poll: 20 * time.Millisecond,
			Signature: "sentry/test (+ops@example.org)", Now: clock,
		})
	}
	closeMailer(t, mailer(roots))
	ms := srv.Messages(t)
	if len(ms) != 1 {
		t.Fatalf("%d mails over implicit TLS, want the digest", len(ms))
	}
	if m := ms[0]; !m.TLS || !m.Implicit || m.Login != "sentry" || m.EnvelopeTo[0] != "ops@example.org" ||
		!strings.Contains(m.Body, "broken: down") {
		t.Errorf("digest: TLS %v, implicit %v, login %q, to %v:\n%s", m.TLS, m.Implicit, m.Login, m.EnvelopeTo, m.Body)
	}

	// The next day, against the system's roots only: the relay's
	// certificate is not trusted, nothing is sent.
	day = day.Add(24 * time.Hour)
	m := mailer(nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = m.Close(ctx) // the notice is left open or given up on
	if n := len(srv.Messages(t)); n != 1 {
		t.Errorf("%d mails after the untrusted relay's day, want still 1", n)
	}
	var lastErr string
	if err := w.Pool().QueryRow(ctx, `SELECT last_error FROM sentry_notices WHERE key = 'digest-2026-11-26'`).Scan(&lastErr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lastErr, "TLS") || !strings.Contains(lastErr, "certificate") || strings.Contains(lastErr, password) {
		t.Errorf("the untrusted relay's notice says %q; want a TLS certificate error, without the password", lastErr)
	}
}
