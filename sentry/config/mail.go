package config

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
)

// The mail's keys (notify.smtp, notify.digest_to): the relay, its
// password, the addresses.

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
