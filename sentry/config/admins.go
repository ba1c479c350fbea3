package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mirrorsentry/sentry/sentry/internal/dburl"
)

// Address families of checks.families.
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
)

// Policies of state.family_policy.
const (
	// PolicyDegraded: a mirror broken over one address family only stays
	// offered and is reported degraded.
	PolicyDegraded = "degraded"
	// PolicyDown: such a sweep counts against the mirror, as an
	// unreachable one does.
	PolicyDown = "down"
)

// adminProblems are the problems of the keys that keep mirror admins in
// the loop: certificates, address families, mail, the status page's
// public address. secret reports a problem of a key the environment may
// set, naming its source.
func (c *Config) adminProblems(secret func(key, format string, a ...any)) []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if f := c.Checks.CAFile; f != "" {
		if err := checkCAFile(f); err != nil {
			add("checks.ca_file %s", err)
		}
	}
	if w := c.Checks.TLSExpiryWarning.D(); w < time.Hour || w > 365*24*time.Hour {
		add("checks.tls_expiry_warning must be between 1h and 365d, not %s", c.Checks.TLSExpiryWarning)
	}
	if len(c.Checks.Families) == 0 {
		add("checks.families needs at least one address family this vantage point reaches: ipv4, ipv6")
	}
	seen := map[string]bool{}
	for i, f := range c.Checks.Families {
		switch {
		case f != FamilyIPv4 && f != FamilyIPv6:
			add("checks.families[%d] %q is not an address family: want ipv4 or ipv6", i, f)
		case seen[f]:
			add("checks.families[%d] %q is listed twice", i, f)
		}
		seen[f] = true
	}
	if p := c.State.FamilyPolicy; p != PolicyDegraded && p != PolicyDown {
		add("state.family_policy %q: want degraded (a mirror broken over one address family stays offered) or down", p)
	}
	if u := c.HTTP.PublicURL; u != "" {
		if err := checkHTTPURL(u); err != nil {
			add("http.public_url %w", err)
		}
	}

	s := c.Notify.SMTP
	if s.Host == "" {
		if s.From != "" || s.User != "" || s.Password != "" {
			add("notify.smtp.host is required when notify.smtp sets a sender, user or password")
		}
		if len(c.Notify.DigestTo) > 0 {
			add("notify.digest_to needs notify.smtp.host: the digest is mailed")
		}
	} else {
		if strings.ContainsAny(s.Host, " /:@\r\n") {
			add("notify.smtp.host %q must be a host name or address, without a port (that is notify.smtp.port)", s.Host)
		}
		if s.From == "" {
			add("notify.smtp.from is required with notify.smtp.host: the sender address of the mails")
		}
	}
	if s.Port < 1 || s.Port > 65535 {
		add("notify.smtp.port must be between 1 and 65535, not %d", s.Port)
	}
	if s.From != "" {
		if err := CheckAddress(s.From); err != nil {
			add("notify.smtp.from %v", err)
		}
	}
	if strings.ContainsAny(s.User, "\r\n\x00") {
		add("notify.smtp.user must not contain line breaks")
	}
	if s.Password != "" && s.User == "" {
		secret("notify.smtp.password", "is set but notify.smtp.user is not: sentry authenticates with both or neither")
	}
	if strings.ContainsAny(s.Password, "\x00") {
		secret("notify.smtp.password", "must not contain a NUL byte")
	}
	if s.User != "" && !s.StartTLS && !isLoopback(s.Host) {
		add("notify.smtp.user needs notify.smtp.starttls: sentry never sends a password unencrypted to another host")
	}
	for i, a := range c.Notify.DigestTo {
		if err := CheckAddress(a); err != nil {
			add("notify.digest_to[%d] %v", i, err)
		}
	}
	return errs
}

// checkCAFile checks that f is a readable PEM file of at least one
// certificate.
func checkCAFile(f string) error {
	_, err := ReadCAFile(f)
	return err
}

// ReadCAFile reads the certificates of a PEM file (checks.ca_file). Its
// errors name the file, never its contents.
func ReadCAFile(f string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(f)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%q does not exist", f)
		}
		return nil, fmt.Errorf("%q cannot be read: %v", f, errors.Unwrap(err))
	}
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%q: PEM block %d is not a certificate: %v", f, n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%q holds no PEM certificate (want -----BEGIN CERTIFICATE----- blocks)", f)
	}
	return certs, nil
}

// CheckAddress checks that a is one plain e-mail address (user@host, no
// display name, no line break): what a mail header can carry as it is.
func CheckAddress(a string) error {
	if a == "" {
		return errors.New("is empty")
	}
	if strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return errors.New("must not contain control characters or line breaks")
	}
	p, err := mail.ParseAddress(a)
	if err != nil || p.Name != "" || p.Address != a || strings.ContainsAny(a, " <>(),;:\"") || len(a) > 254 {
		return fmt.Errorf("%q is not a plain e-mail address (user@example.org)", a)
	}
	return nil
}

func isLoopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1" || host == "[::1]"
}

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
