package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"os"
	"strconv"
	"strings"
	"time"
)

// SMTP is the relay mails go through (notify.smtp).
type SMTP struct {
	Host string
	Port int
	// StartTLS requires STARTTLS before anything else is said; the
	// relay's certificate is verified against RootCAs (nil: the system's).
	StartTLS bool
	// ImplicitTLS speaks TLS from the first byte (SMTP submission over
	// TLS, RFC 8314, port 465), the certificate verified as for StartTLS;
	// STARTTLS is then not used.
	ImplicitTLS bool
	RootCAs     *x509.CertPool
	// User and Password authenticate with AUTH PLAIN, which net/smtp
	// sends only over TLS (or to localhost).
	User, Password string
	From           string
	// Timeout bounds a whole delivery (connect to QUIT).
	Timeout time.Duration
}

// mail is one message to send.
type mail struct {
	To      []string
	Subject string
	Body    string
	// ID names the notice: the Message-ID is made of it, so a mail sent
	// twice (a sender that died between the relay's 250 and recording
	// it) is one message to the mail system.
	ID string
}

// send delivers m through the relay, within ctx and the timeout. Its
// error never holds the password.
func (s SMTP) send(ctx context.Context, m mail, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect to the mail relay %s: %w", addr, unwrapOp(err))
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if s.ImplicitTLS {
		tc := tls.Client(conn, s.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return fmt.Errorf("mail relay %s: TLS: %w", addr, err)
		}
		conn = tc // net/smtp sees a *tls.Conn: AUTH PLAIN is allowed
	}
	c, err := smtp.NewClient(conn, s.Host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("mail relay %s: %w", addr, err)
	}
	defer c.Close()
	host, _ := os.Hostname()
	if host == "" || strings.ContainsAny(host, " \r\n") {
		host = "localhost"
	}
	if err := c.Hello(host); err != nil {
		return fmt.Errorf("mail relay %s: EHLO: %w", addr, err)
	}
	if s.StartTLS && !s.ImplicitTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("mail relay %s does not offer STARTTLS, which notify.smtp.starttls requires", addr)
		}
		if err := c.StartTLS(s.tlsConfig()); err != nil {
			return fmt.Errorf("mail relay %s: STARTTLS: %w", addr, err)
		}
	}
	if s.User != "" {
		if err := c.Auth(smtp.PlainAuth("", s.User, s.Password, s.Host)); err != nil {
			return fmt.Errorf("mail relay %s: authentication as %s failed: %w", addr, s.User, err)
		}
	}
	if err := c.Mail(s.From); err != nil {
		return fmt.Errorf("mail relay %s: MAIL FROM: %w", addr, err)
	}
	for _, to := range m.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("mail relay %s: RCPT TO %s: %w", addr, to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("mail relay %s: DATA: %w", addr, err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("mail relay %s: DATA: %w", addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("mail relay %s: the message was refused: %w", addr, err)
	}
	_ = c.Quit()
	return nil
}

// tlsConfig is how the relay's certificate is verified: for its host
// name, against RootCAs, TLS 1.2 at least.
func (s SMTP) tlsConfig() *tls.Config {
	return &tls.Config{ServerName: s.Host, RootCAs: s.RootCAs, MinVersion: tls.VersionTLS12}
}

func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// message renders m as an RFC 5322 message: plain text in UTF-8, quoted-
// printable, the subject encoded, every header value free of line breaks
// (the addresses were checked when configured; names come from the
// database and are cleaned here).
func message(from string, m mail, now time.Time) []byte {
	var b bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("From", "sentry <"+from+">")
	h("To", strings.Join(m.To, ", "))
	h("Subject", mime.QEncoding.Encode("utf-8", headerText(m.Subject)))
	h("Date", now.UTC().Format(time.RFC1123Z))
	sum := sha256.Sum256([]byte(m.ID))
	domain := from[strings.LastIndexByte(from, '@')+1:]
	h("Message-ID", "<"+headerText(m.ID)+"."+hex.EncodeToString(sum[:6])+"@"+domain+">")
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	h("Auto-Submitted", "auto-generated")
	h("X-Sentry-Notice", headerText(m.ID))
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n", "\r\n")))
	_ = qp.Close()
	return b.Bytes()
}

// headerText is s fit for a header value: control characters (line
// breaks above all) become spaces, and it is bounded.
func headerText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
