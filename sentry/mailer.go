package sentry

import (
	"log/slog"
	"time"

	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/notify"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/store"
)

// NewNotifier starts the webhooks that notify.webhooks configures; nil
// when there are none.
func NewNotifier(cfg *config.Config, log *slog.Logger) *notify.Notifier {
	if len(cfg.Notify.Webhooks) == 0 {
		return nil
	}
	return notify.New(notify.Options{
		URLs: cfg.Notify.Webhooks, Secret: []byte(cfg.Notify.Secret), Retries: notifyRetries(cfg),
		RetryWaitMax: cfg.Notify.RetryWaitMax.D(), Timeout: cfg.Notify.Timeout.D(),
		Vantage: cfg.Vantage, UserAgent: cfg.UserAgent(), Logger: log,
	})
}

// NewMailer starts the mail to mirror admins and operators that
// notify.smtp configures; nil when it has no host.
func NewMailer(cfg *config.Config, st *store.Store, log *slog.Logger) (*notify.Mailer, error) {
	s := cfg.Notify.SMTP
	if s.Host == "" {
		return nil, nil
	}
	roots, err := RootPool(cfg)
	if err != nil {
		return nil, err
	}
	return notify.NewMailer(notify.MailOptions{
		Store: st, Reporter: report.New(st.Pool(), nil),
		SMTP: notify.SMTP{Host: s.Host, Port: s.Port, StartTLS: s.StartTLS, ImplicitTLS: s.ImplicitTLS, RootCAs: roots, User: s.User, Password: s.Password,
			From: s.From, Timeout: max(cfg.Notify.Timeout.D(), 30*time.Second)},
		PublicURL: cfg.HTTP.PublicURL, DigestTo: cfg.Notify.DigestTo, Retries: notifyRetries(cfg),
		Secrets: cfg.Secrets(), Signature: cfg.UserAgent(), Logger: log,
	}), nil
}

// notifyRetries is notify.retries as notify counts it: the configuration's
// 0 is none (notify's 0 is its default).
func notifyRetries(cfg *config.Config) int {
	if cfg.Notify.Retries == 0 {
		return notify.NoRetries
	}
	return cfg.Notify.Retries
}
