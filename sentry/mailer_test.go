package sentry_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mirrorsentry/sentry/internal/testkit/smtptest"
	"github.com/mirrorsentry/sentry/internal/testkit/world"
	"github.com/mirrorsentry/sentry/sentry"
	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/observe"
)

// TestNotifyRetriesAsConfigured: notify.retries counts the retries of a
// webhook POST and of a mail, and 0 means none for both (notify's own 0
// means its default, 5, and the configuration's 0 used to be passed
// through as that).
func TestNotifyRetriesAsConfigured(t *testing.T) {
	t.Parallel()
	for _, retries := range []int{0, 1} {
		t.Run(fmt.Sprintf("webhook, %d retries", retries), func(t *testing.T) {
			t.Parallel()
			recv := world.NewReceiver(t, 1) // the first POST answered 503
			cfg := config.Default()
			cfg.Notify.Webhooks = []string{recv.URL}
			cfg.Notify.Retries = retries
			cfg.Notify.RetryWaitMax = config.Duration(10 * time.Millisecond)
			n := sentry.NewNotifier(&cfg, nil)
			n.RunFinished(observe.RunEvent{RunID: 1, Kind: "sweep", Outcome: "failed"})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := n.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if got, want := len(recv.Got()), retries; got != want {
				t.Errorf("%d events delivered, want %d (the first POST refused, %d retries)", got, want, retries)
			}
		})
	}
	t.Run("mail, 0 retries", func(t *testing.T) {
		t.Parallel()
		w := world.New(t, nil)
		srv := smtptest.Start(t, smtptest.Options{FailFirst: 1})
		cfg := w.Deps.Config
		cfg.Notify.SMTP.Host, cfg.Notify.SMTP.Port, cfg.Notify.SMTP.From = srv.Host, srv.Port, "sentry@example.org"
		cfg.Notify.DigestTo = []string{"ops@example.org"}
		cfg.Notify.Retries = 0
		m, err := sentry.NewMailer(cfg, w.Store, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.Close(ctx); err != nil { // mails the digest: refused once
			t.Fatal(err)
		}
		var attempts int
		var gaveUp bool
		w.QueryRow(t, `SELECT attempts, gave_up_at IS NOT NULL FROM sentry_notices WHERE kind = 'digest'`, nil, &attempts, &gaveUp)
		if attempts != 1 || !gaveUp {
			t.Errorf("the refused digest: %d attempts, given up %v; want 1 and given up (no retry)", attempts, gaveUp)
		}
	})
}
