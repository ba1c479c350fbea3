package sentry

import (
	"log/slog"
	"time"

	"github.com/mirrorsentry/sentry/sentry/config"
	"github.com/mirrorsentry/sentry/sentry/notify"
	"github.com/mirrorsentry/sentry/sentry/report"
	"github.com/mirrorsentry/sentry/sentry/store"
)

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
		PublicURL: cfg.HTTP.PublicURL, DigestTo: cfg.Notify.DigestTo, Retries: cfg.Notify.Retries,
		Secrets: cfg.Secrets(), Signature: cfg.UserAgent(), Logger: log,
	}), nil
}
