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
// the loop: certificates, address families, the status page's public
// address, mail.
func (c *Config) adminProblems(p *problemList) {
	c.Notify.SMTP.passwordProblems(p)
	c.Checks.adminProblems(p)
	if pol := c.State.FamilyPolicy; pol != PolicyDegraded && pol != PolicyDown {
		p.add("state.family_policy %q: want degraded (a mirror broken over one address family stays offered) or down", pol)
	}
	if u := c.HTTP.PublicURL; u != "" {
		if err := checkHTTPURL(u); err != nil {
			p.add("http.public_url %w", err)
		}
	}
	c.Notify.SMTP.problems(p, len(c.Notify.DigestTo) > 0)
	for i, a := range c.Notify.DigestTo {
		if err := CheckAddress(a); err != nil {
			p.add("notify.digest_to[%d] %v", i, err)
		}
	}
}

// adminProblems are those of the checks' certificates and address
// families.
func (c ChecksConfig) adminProblems(p *problemList) {
	if f := c.CAFile; f != "" {
		if err := checkCAFile(f); err != nil {
			p.add("checks.ca_file %s", err)
		}
	}
	if w := c.TLSExpiryWarning.D(); w < time.Hour || w > 365*24*time.Hour {
		p.add("checks.tls_expiry_warning must be between 1h and 365d, not %s", c.TLSExpiryWarning)
	}
	if len(c.Families) == 0 {
		p.add("checks.families needs at least one address family this vantage point reaches: ipv4, ipv6")
	}
	seen := map[string]bool{}
	for i, f := range c.Families {
		switch {
		case f != FamilyIPv4 && f != FamilyIPv6:
			p.add("checks.families[%d] %q is not an address family: want ipv4 or ipv6", i, f)
		case seen[f]:
			p.add("checks.families[%d] %q is listed twice", i, f)
		}
		seen[f] = true
	}
}

// smtpsPort is the port of SMTP submission over implicit TLS (RFC 8314):
// a relay there waits for a TLS handshake, and a client waiting for its
// greeting would only time out.
const smtpsPort = 465

// problems are those of the mail relay; digest: notify.digest_to is set
// (the digest is mailed).
func (s SMTPConfig) problems(p *problemList, digest bool) {
	if s.Host == "" {
		if s.From != "" || s.User != "" || s.Password != "" {
			p.add("notify.smtp.host is required when notify.smtp sets a sender, user or password")
		}
		if digest {
			p.add("notify.digest_to needs notify.smtp.host: the digest is mailed")
		}
	} else {
		if strings.ContainsAny(s.Host, " /:@\r\n") {
			p.add("notify.smtp.host %q must be a host name or address, without a port (that is notify.smtp.port)", s.Host)
		}
		if s.From == "" {
			p.add("notify.smtp.from is required with notify.smtp.host: the sender address of the mails")
		}
	}
	if s.Port < 1 || s.Port > 65535 {
		p.add("notify.smtp.port must be between 1 and 65535, not %d", s.Port)
	}
	if s.From != "" {
		if err := CheckAddress(s.From); err != nil {
			p.add("notify.smtp.from %v", err)
		}
	}
	if strings.ContainsAny(s.User, "\r\n\x00") {
		p.add("notify.smtp.user must not contain line breaks")
	}
	if s.User != "" && !s.StartTLS && !s.ImplicitTLS && !isLoopback(s.Host) {
		p.add("notify.smtp.user needs notify.smtp.starttls or notify.smtp.implicit_tls: sentry never sends a password unencrypted to another host")
	}
	if s.Host != "" && s.Port == smtpsPort && !s.ImplicitTLS {
		p.add("notify.smtp.port %d is SMTP over TLS from the first byte (submissions): set notify.smtp.implicit_tls: true, "+
			"or use the relay's STARTTLS port (587)", smtpsPort)
	}
}

// passwordProblems are those of the relay's password, a key the
// environment may set (SENTRY_SMTP_PASSWORD).
func (s SMTPConfig) passwordProblems(p *problemList) {
	if s.Password != "" && s.User == "" {
		p.secret("notify.smtp.password", "is set but notify.smtp.user is not: sentry authenticates with both or neither")
	}
	if strings.ContainsAny(s.Password, "\x00") {
		p.secret("notify.smtp.password", "must not contain a NUL byte")
	}
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
