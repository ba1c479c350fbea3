package config

import (
	"net/url"
	"slices"

	"github.com/mirrorsentry/sentry/sentry/internal/dburl"
)

// Secrets are the secret values of the configuration (the database
// password, the hook, trigger and notify secrets, the SMTP password) that
// must never reach a log line, a mail or a report, with the forms they
// could take in a URL. Values shorter than 6 bytes are left out: as
// text they would match ordinary words.
func (c *Config) Secrets() []string {
	var out []string
	addSecret := func(s string) {
		if len(s) < 6 {
			return
		}
		for _, v := range []string{s, url.PathEscape(s), url.QueryEscape(s)} {
			if !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	addSecret(dburl.Password(c.Database.URL))
	addSecret(c.Hook.Secret)
	addSecret(c.Trigger.Secret)
	addSecret(c.Notify.Secret)
	addSecret(c.Notify.SMTP.Password)
	return out
}
